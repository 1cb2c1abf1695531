DROP TABLE notebook_leases;

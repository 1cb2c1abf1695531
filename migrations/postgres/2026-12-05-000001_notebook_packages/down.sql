DROP TABLE notebook_packages;

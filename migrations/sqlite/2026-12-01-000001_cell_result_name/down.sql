ALTER TABLE cells DROP COLUMN result_name;

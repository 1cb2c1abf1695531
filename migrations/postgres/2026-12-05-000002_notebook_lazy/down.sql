ALTER TABLE notebooks DROP COLUMN lazy;

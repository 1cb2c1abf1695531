-- The Python name a SQL cell's result is bound to (NULL for Python cells).
ALTER TABLE cells ADD COLUMN result_name TEXT;
-- Existing SQL cells get df_1, df_2, ... in notebook order.
UPDATE cells SET result_name = 'df_' || (
    SELECT COUNT(*) FROM cells AS earlier
    WHERE earlier.notebook_id = cells.notebook_id
      AND earlier.cell_type = 'sql'
      AND earlier.position <= cells.position
) WHERE cell_type = 'sql';

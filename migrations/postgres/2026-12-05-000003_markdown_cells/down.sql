-- Markdown cells cannot exist without their type: drop them and close the gaps they leave.
DELETE FROM cells WHERE cell_type = 'markdown';
UPDATE cells SET position = (
    SELECT COUNT(*) FROM cells AS earlier
    WHERE earlier.notebook_id = cells.notebook_id AND earlier.position < cells.position
);
ALTER TABLE cells DROP CONSTRAINT cells_cell_type_check;
ALTER TABLE cells ADD CONSTRAINT cells_cell_type_check CHECK (cell_type IN ('python', 'sql'));

-- Markdown cells: text the UI renders; never executed.
ALTER TABLE cells DROP CONSTRAINT cells_cell_type_check;
ALTER TABLE cells ADD CONSTRAINT cells_cell_type_check
    CHECK (cell_type IN ('python', 'sql', 'markdown'));

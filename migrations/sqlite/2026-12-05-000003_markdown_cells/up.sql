-- Markdown cells: text the UI renders; never executed.
-- SQLite cannot alter a CHECK constraint, so the table is rebuilt with the wider one.
CREATE TABLE cells_new (
    id TEXT PRIMARY KEY,
    notebook_id TEXT NOT NULL REFERENCES notebooks (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    cell_type TEXT NOT NULL CHECK (cell_type IN ('python', 'sql', 'markdown')),
    code TEXT NOT NULL DEFAULT '',
    code_revision BIGINT NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'idle',
    stdout TEXT NOT NULL DEFAULT '',
    error TEXT,
    outputs TEXT NOT NULL DEFAULT '[]',
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    result_name TEXT
);
INSERT INTO cells_new (id, notebook_id, position, cell_type, code, code_revision, status,
                       stdout, error, outputs, created_at, updated_at, result_name)
    SELECT id, notebook_id, position, cell_type, code, code_revision, status,
           stdout, error, outputs, created_at, updated_at, result_name
    FROM cells;
DROP TABLE cells;
ALTER TABLE cells_new RENAME TO cells;
CREATE INDEX cells_notebook_idx ON cells (notebook_id, position);

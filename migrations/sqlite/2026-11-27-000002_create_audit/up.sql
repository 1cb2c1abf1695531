-- One row per tool call the AI assistant made on a notebook.
CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    user_id TEXT NOT NULL,
    notebook_id TEXT NOT NULL REFERENCES notebooks (id) ON DELETE CASCADE,
    tool TEXT NOT NULL,
    input TEXT NOT NULL,
    outcome TEXT NOT NULL,
    ok BOOLEAN NOT NULL
);
CREATE INDEX audit_log_notebook_idx ON audit_log (notebook_id, created_at);

-- Users seen by the server (to give each one a demo notebook exactly once).
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    created_at TIMESTAMP NOT NULL DEFAULT now()
);

CREATE TABLE notebooks (
    id TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL,
    name TEXT NOT NULL,
    db_conn_string TEXT,
    revision BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL DEFAULT now(),
    updated_at TIMESTAMP NOT NULL DEFAULT now()
);
CREATE INDEX notebooks_owner_idx ON notebooks (owner_id, created_at);

CREATE TABLE cells (
    id TEXT PRIMARY KEY,
    notebook_id TEXT NOT NULL REFERENCES notebooks (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    cell_type TEXT NOT NULL CHECK (cell_type IN ('python', 'sql')),
    code TEXT NOT NULL DEFAULT '',
    code_revision BIGINT NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'idle',
    stdout TEXT NOT NULL DEFAULT '',
    error TEXT,
    outputs TEXT NOT NULL DEFAULT '[]',
    created_at TIMESTAMP NOT NULL DEFAULT now(),
    updated_at TIMESTAMP NOT NULL DEFAULT now()
);
CREATE INDEX cells_notebook_idx ON cells (notebook_id, position);

-- Packages a notebook installs into its own layer, re-provisioned when it opens on a new server.
CREATE TABLE notebook_packages (
    notebook_id TEXT NOT NULL REFERENCES notebooks (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    version TEXT,
    state TEXT NOT NULL CHECK (state IN ('installing', 'installed', 'failed')),
    error TEXT,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (notebook_id, name)
);

-- Lazy mode: running or editing a cell marks its descendants stale instead of running them.
ALTER TABLE notebooks ADD COLUMN lazy BOOLEAN NOT NULL DEFAULT FALSE;

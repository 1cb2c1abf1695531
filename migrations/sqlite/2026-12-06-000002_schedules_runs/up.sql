-- Cron schedules of notebooks. next_fire_at is the claim token: the instance whose
-- compare-and-set UPDATE moves it on is the one that fires (see src/schedule/store.rs).
CREATE TABLE schedules (
    id TEXT PRIMARY KEY,
    notebook_id TEXT NOT NULL REFERENCES notebooks (id) ON DELETE CASCADE,
    cron TEXT NOT NULL,
    timezone TEXT NOT NULL,
    next_fire_at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    created_by TEXT NOT NULL
);
CREATE INDEX schedules_next_fire_idx ON schedules (next_fire_at);
CREATE INDEX schedules_notebook_idx ON schedules (notebook_id);

-- Recorded whole-notebook runs (scheduled, manual or API) with their outputs' snapshot.
-- A run outlives its schedule (schedule_id becomes NULL), not its notebook.
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    notebook_id TEXT NOT NULL REFERENCES notebooks (id) ON DELETE CASCADE,
    schedule_id TEXT REFERENCES schedules (id) ON DELETE SET NULL,
    trigger_kind TEXT NOT NULL CHECK (trigger_kind IN ('schedule', 'manual', 'api')),
    scheduled_for TIMESTAMP,
    status TEXT NOT NULL CHECK (status IN ('running', 'success', 'error', 'failed', 'skipped')),
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    failed_cell TEXT,
    detail TEXT,
    snapshot TEXT,
    heartbeat_at TIMESTAMP NOT NULL
);
CREATE INDEX runs_notebook_idx ON runs (notebook_id, started_at);
CREATE INDEX runs_status_idx ON runs (status, heartbeat_at);

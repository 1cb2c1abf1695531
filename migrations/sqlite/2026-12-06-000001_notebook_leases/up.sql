-- Which server instance owns each open notebook (its room and kernel). A row outlives its
-- lease so the epoch only ever grows: a takeover bumps it, and every write by a room checks
-- its instance still holds the lease at the epoch it opened with. No foreign key: a lease may
-- be taken for a notebook id before anyone knows whether it exists. Times are UTC.
-- SQLite is single-instance: the table exists so both schemas match, and stays empty.
CREATE TABLE notebook_leases (
    notebook_id TEXT PRIMARY KEY,
    instance_id TEXT NOT NULL,
    instance_url TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX notebook_leases_instance_idx ON notebook_leases (instance_id);

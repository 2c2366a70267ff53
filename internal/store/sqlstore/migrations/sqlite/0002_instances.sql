-- Instance leases (spec/mps.md §9), SQLite dialect: one row per running amtd
-- instance sharing the database, renewed periodically. A device record's
-- mps_instance names the instance holding its CIRA connection; an instance
-- whose lease expired is treated as gone and its devices as disconnected.

CREATE TABLE instances (
    id          TEXT PRIMARY KEY,
    addr        TEXT NOT NULL, -- base URL peers forward requests to ('' = unknown)
    incarnation TEXT NOT NULL, -- random per process start
    started_at  TEXT NOT NULL,
    renewed_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);

-- Disconnecting an instance's devices (release, reap) without a scan.
CREATE INDEX devices_mps_instance ON devices (mps_instance) WHERE mps_instance IS NOT NULL;

-- Legacy provisioning (spec/legacy.md), SQLite dialect: the allow-list of
-- expected machines, the hello messages received, and generated PSK pairs
-- (the PPS of a pair is in the secret store, never here).

CREATE TABLE legacy_devices (
    guid         TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    hostname     TEXT NOT NULL,
    dns_suffix   TEXT NOT NULL,
    profile_name TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX legacy_devices_tenant ON legacy_devices (tenant_id, guid);

CREATE TABLE legacy_hellos (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id             TEXT    NOT NULL,
    guid                  TEXT    NOT NULL,
    source_ip             TEXT    NOT NULL,
    version               INTEGER NOT NULL,
    retry_count           INTEGER NOT NULL,
    admin_credentials_set INTEGER NOT NULL,
    hashes                TEXT    NOT NULL, -- JSON array of {type, hash}
    pid                   TEXT    NOT NULL,
    received_at           TEXT    NOT NULL,
    outcome               TEXT    NOT NULL,
    detail                TEXT    NOT NULL
);
CREATE INDEX legacy_hellos_tenant ON legacy_hellos (tenant_id, id);
CREATE INDEX legacy_hellos_guid ON legacy_hellos (guid, id);

CREATE TABLE legacy_psk_pairs (
    pid         TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    secret_id   TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    exported_at TEXT,
    exported_to TEXT NOT NULL,
    used_by     TEXT NOT NULL,
    used_at     TEXT
);
CREATE INDEX legacy_psk_pairs_tenant ON legacy_psk_pairs (tenant_id, pid);

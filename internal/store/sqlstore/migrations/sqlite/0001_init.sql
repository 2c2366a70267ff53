-- amtd schema, SQLite dialect.
-- Names: "name" keeps the case it was created with; "name_key" is its lower-cased
-- form, unique per tenant. References between configs use integer ids so that
-- the database enforces them; lookups resolve names within the tenant first.
-- Times are UTC text, fixed width (2006-01-02T15:04:05.000000Z), so they sort.

CREATE TABLE ciraconfigs (
    id                    INTEGER PRIMARY KEY,
    tenant_id             TEXT    NOT NULL,
    name                  TEXT    NOT NULL,
    name_key              TEXT    NOT NULL,
    mps_server_address    TEXT    NOT NULL,
    mps_port              INTEGER NOT NULL,
    username              TEXT    NOT NULL,
    common_name           TEXT    NOT NULL,
    server_address_format INTEGER NOT NULL,
    auth_method           INTEGER NOT NULL,
    mps_root_certificate  TEXT    NOT NULL,
    proxy_details         TEXT    NOT NULL,
    secret_id             TEXT    NOT NULL,
    version               INTEGER NOT NULL,
    UNIQUE (tenant_id, name_key)
);

CREATE TABLE domains (
    id              INTEGER PRIMARY KEY,
    tenant_id       TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    name_key        TEXT    NOT NULL,
    domain_suffix   TEXT    NOT NULL,
    suffix_key      TEXT    NOT NULL,
    storage_format  TEXT    NOT NULL,
    expiration_date TEXT,
    secret_id       TEXT    NOT NULL,
    version         INTEGER NOT NULL,
    UNIQUE (tenant_id, name_key),
    UNIQUE (tenant_id, suffix_key)
);

CREATE TABLE ieee8021xconfigs (
    id                      INTEGER PRIMARY KEY,
    tenant_id               TEXT    NOT NULL,
    name                    TEXT    NOT NULL,
    name_key                TEXT    NOT NULL,
    authentication_protocol INTEGER NOT NULL,
    pxe_timeout             INTEGER,
    wired_interface         INTEGER NOT NULL,
    version                 INTEGER NOT NULL,
    UNIQUE (tenant_id, name_key)
);

CREATE TABLE wirelessconfigs (
    id                    INTEGER PRIMARY KEY,
    tenant_id             TEXT    NOT NULL,
    name                  TEXT    NOT NULL,
    name_key              TEXT    NOT NULL,
    authentication_method INTEGER NOT NULL,
    encryption_method     INTEGER NOT NULL,
    ssid                  TEXT    NOT NULL,
    link_policy           TEXT    NOT NULL, -- JSON array of integers
    ieee8021x_id          INTEGER REFERENCES ieee8021xconfigs (id),
    secret_id             TEXT    NOT NULL,
    version               INTEGER NOT NULL,
    UNIQUE (tenant_id, name_key)
);
CREATE INDEX wirelessconfigs_ieee8021x ON wirelessconfigs (ieee8021x_id);

CREATE TABLE proxyconfigs (
    id                 INTEGER PRIMARY KEY,
    tenant_id          TEXT    NOT NULL,
    name               TEXT    NOT NULL,
    name_key           TEXT    NOT NULL,
    address            TEXT    NOT NULL,
    address_key        TEXT    NOT NULL,
    info_format        INTEGER NOT NULL,
    port               INTEGER NOT NULL,
    network_dns_suffix TEXT    NOT NULL,
    version            INTEGER NOT NULL,
    UNIQUE (tenant_id, name_key),
    UNIQUE (tenant_id, address_key, port)
);

CREATE TABLE profiles (
    id                            INTEGER PRIMARY KEY,
    tenant_id                     TEXT    NOT NULL,
    name                          TEXT    NOT NULL,
    name_key                      TEXT    NOT NULL,
    activation                    TEXT    NOT NULL,
    generate_random_password      INTEGER NOT NULL,
    generate_random_mebx_password INTEGER NOT NULL,
    cira_id                       INTEGER REFERENCES ciraconfigs (id),
    tags                          TEXT    NOT NULL, -- JSON array of strings
    dhcp_enabled                  INTEGER NOT NULL,
    ip_sync_enabled               INTEGER,
    local_wifi_sync_enabled       INTEGER,
    uefi_wifi_sync_enabled        INTEGER,
    tls_mode                      INTEGER,
    tls_signing_authority         TEXT,
    user_consent                  TEXT    NOT NULL,
    ider_enabled                  INTEGER NOT NULL,
    kvm_enabled                   INTEGER NOT NULL,
    sol_enabled                   INTEGER NOT NULL,
    ieee8021x_id                  INTEGER REFERENCES ieee8021xconfigs (id),
    secret_id                     TEXT    NOT NULL,
    version                       INTEGER NOT NULL,
    UNIQUE (tenant_id, name_key)
);
CREATE INDEX profiles_cira ON profiles (cira_id);
CREATE INDEX profiles_ieee8021x ON profiles (ieee8021x_id);

CREATE TABLE profile_wireless (
    profile_id  INTEGER NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
    wireless_id INTEGER NOT NULL REFERENCES wirelessconfigs (id),
    priority    INTEGER NOT NULL,
    PRIMARY KEY (profile_id, wireless_id)
);
CREATE INDEX profile_wireless_wireless ON profile_wireless (wireless_id);

CREATE TABLE profile_proxies (
    profile_id INTEGER NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
    proxy_id   INTEGER NOT NULL REFERENCES proxyconfigs (id),
    priority   INTEGER NOT NULL,
    PRIMARY KEY (profile_id, proxy_id)
);
CREATE INDEX profile_proxies_proxy ON profile_proxies (proxy_id);

CREATE TABLE devices (
    guid              TEXT    PRIMARY KEY,
    tenant_id         TEXT    NOT NULL,
    hostname          TEXT    NOT NULL,
    friendly_name     TEXT    NOT NULL,
    dns_suffix        TEXT    NOT NULL,
    mps_username      TEXT    NOT NULL,
    tags              TEXT    NOT NULL, -- JSON array of strings
    profile_name      TEXT    NOT NULL,
    connection_status INTEGER NOT NULL,
    mps_instance      TEXT,
    last_connected    TEXT,
    last_seen         TEXT,
    last_disconnected TEXT,
    device_info       TEXT,             -- JSON object
    created_at        TEXT    NOT NULL,
    updated_at        TEXT    NOT NULL
);
CREATE INDEX devices_tenant ON devices (tenant_id, guid);
CREATE INDEX devices_hostname ON devices (tenant_id, hostname);
CREATE INDEX devices_friendly_name ON devices (tenant_id, friendly_name);

CREATE TABLE provisioning_events (
    guid      TEXT    NOT NULL,
    seq       INTEGER NOT NULL,
    tenant_id TEXT    NOT NULL,
    time      TEXT    NOT NULL,
    session   TEXT    NOT NULL,
    step      TEXT    NOT NULL,
    result    TEXT    NOT NULL,
    detail    TEXT    NOT NULL,
    PRIMARY KEY (guid, seq)
);

CREATE TABLE sealed_secrets (
    key        TEXT PRIMARY KEY,
    blob       BLOB NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

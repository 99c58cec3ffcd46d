-- The first schema. Portable on purpose: INTEGER/REAL/TEXT/BLOB columns, timestamps as UTC
-- milliseconds since the Unix epoch, no SQLite-only types, so a PostgreSQL twin is a translation
-- of this file (INTEGER PRIMARY KEY -> BIGINT GENERATED ALWAYS AS IDENTITY, BLOB -> BYTEA).

CREATE TABLE sites (
    id          INTEGER PRIMARY KEY,
    code        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    utc_offset  TEXT NOT NULL
);

CREATE TABLE shifts (
    site_id     INTEGER NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    name        TEXT NOT NULL,
    days        TEXT NOT NULL,
    start_time  TEXT NOT NULL,
    end_time    TEXT NOT NULL,
    PRIMARY KEY (site_id, position)
);

CREATE TABLE holidays (
    site_id     INTEGER NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    day         TEXT NOT NULL,
    PRIMARY KEY (site_id, day)
);

CREATE TABLE lines (
    id          INTEGER PRIMARY KEY,
    site_id     INTEGER NOT NULL REFERENCES sites(id),
    code        TEXT NOT NULL,
    name        TEXT NOT NULL,
    UNIQUE (site_id, code)
);

CREATE TABLE machines (
    id              INTEGER PRIMARY KEY,
    site_id         INTEGER NOT NULL REFERENCES sites(id),
    line_id         INTEGER REFERENCES lines(id),
    code            TEXT NOT NULL,
    name            TEXT NOT NULL,
    kind            TEXT NOT NULL,
    capabilities    TEXT NOT NULL,
    rated_power_kw  REAL NOT NULL,
    UNIQUE (site_id, code)
);

CREATE TABLE materials (
    id      INTEGER PRIMARY KEY,
    code    TEXT NOT NULL UNIQUE,
    name    TEXT NOT NULL
);

CREATE TABLE products (
    id      INTEGER PRIMARY KEY,
    code    TEXT NOT NULL UNIQUE,
    name    TEXT NOT NULL,
    family  TEXT NOT NULL
);

CREATE TABLE routings (
    id      INTEGER PRIMARY KEY,
    code    TEXT NOT NULL UNIQUE,
    name    TEXT NOT NULL
);

CREATE TABLE routing_steps (
    routing_id      INTEGER NOT NULL REFERENCES routings(id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    name            TEXT NOT NULL,
    setup_seconds   INTEGER NOT NULL,
    unit_seconds    REAL NOT NULL,
    setup_family    TEXT NOT NULL,
    PRIMARY KEY (routing_id, seq)
);

CREATE TABLE routing_step_machines (
    routing_id  INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    machine_id  INTEGER NOT NULL REFERENCES machines(id),
    PRIMARY KEY (routing_id, seq, machine_id),
    FOREIGN KEY (routing_id, seq) REFERENCES routing_steps(routing_id, seq) ON DELETE CASCADE
);
CREATE INDEX routing_step_machines_machine ON routing_step_machines(machine_id);

CREATE TABLE variants (
    id          INTEGER PRIMARY KEY,
    product_id  INTEGER NOT NULL REFERENCES products(id),
    code        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    routing_id  INTEGER REFERENCES routings(id)
);

CREATE TABLE bom_lines (
    variant_id   INTEGER NOT NULL REFERENCES variants(id) ON DELETE CASCADE,
    position     INTEGER NOT NULL,
    material_id  INTEGER NOT NULL REFERENCES materials(id),
    kg_per_unit  REAL NOT NULL,
    PRIMARY KEY (variant_id, position)
);

CREATE TABLE orders (
    id          INTEGER PRIMARY KEY,
    number      TEXT NOT NULL UNIQUE,
    customer    TEXT NOT NULL,
    variant_id  INTEGER NOT NULL REFERENCES variants(id),
    quantity    INTEGER NOT NULL,
    due_ms      INTEGER NOT NULL,
    priority    INTEGER NOT NULL,
    status      TEXT NOT NULL,
    created_ms  INTEGER NOT NULL
);
CREATE INDEX orders_status ON orders(status, id);
CREATE INDEX orders_due ON orders(due_ms);

CREATE TABLE operations (
    id              INTEGER PRIMARY KEY,
    order_id        INTEGER NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    name            TEXT NOT NULL,
    setup_seconds   INTEGER NOT NULL,
    unit_seconds    REAL NOT NULL,
    setup_family    TEXT NOT NULL,
    status          TEXT NOT NULL,
    machine_id      INTEGER REFERENCES machines(id),
    good            INTEGER NOT NULL DEFAULT 0,
    scrap           INTEGER NOT NULL DEFAULT 0,
    UNIQUE (order_id, seq)
);

CREATE TABLE operation_machines (
    operation_id  INTEGER NOT NULL REFERENCES operations(id) ON DELETE CASCADE,
    machine_id    INTEGER NOT NULL REFERENCES machines(id),
    PRIMARY KEY (operation_id, machine_id)
);
CREATE INDEX operation_machines_machine ON operation_machines(machine_id, operation_id);

CREATE TABLE users (
    id             INTEGER PRIMARY KEY,
    username       TEXT NOT NULL UNIQUE,
    role           TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    created_ms     INTEGER NOT NULL
);

CREATE TABLE api_tokens (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    token_hash  BLOB NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    revoked_ms  INTEGER
);
CREATE INDEX api_tokens_user ON api_tokens(user_id);

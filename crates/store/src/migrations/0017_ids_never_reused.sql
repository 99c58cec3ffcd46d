-- Ids are never reused. SQLite gives a plain INTEGER PRIMARY KEY the largest id plus one, so
-- deleting the newest order, user or rule handed its id to the next one, and anything outside that
-- kept the old id (an ERP, a webhook receiver, a bookmark) then pointed at something else.
-- AUTOINCREMENT keeps the largest id ever given in sqlite_sequence. SQLite cannot add it to a
-- table, so each table is rebuilt the documented way: create, copy, drop, rename, re-index. The
-- migration runner turns foreign keys off around migrations, or dropping a table would cascade.
-- Tables whose ids never leave the store (series, production) keep theirs.

-- sites
CREATE TABLE sites_rebuilt (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    code        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    utc_offset  TEXT NOT NULL
);
INSERT INTO sites_rebuilt (id, code, name, utc_offset)
    SELECT id, code, name, utc_offset FROM sites;
DROP TABLE sites;
ALTER TABLE sites_rebuilt RENAME TO sites;

-- lines
CREATE TABLE lines_rebuilt (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    site_id     INTEGER NOT NULL REFERENCES sites(id),
    code        TEXT NOT NULL,
    name        TEXT NOT NULL,
    UNIQUE (site_id, code)
);
INSERT INTO lines_rebuilt (id, site_id, code, name)
    SELECT id, site_id, code, name FROM lines;
DROP TABLE lines;
ALTER TABLE lines_rebuilt RENAME TO lines;

-- machines
CREATE TABLE machines_rebuilt (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    site_id         INTEGER NOT NULL REFERENCES sites(id),
    line_id         INTEGER REFERENCES lines(id),
    code            TEXT NOT NULL,
    name            TEXT NOT NULL,
    kind            TEXT NOT NULL,
    capabilities    TEXT NOT NULL,
    rated_power_kw  REAL NOT NULL,
    UNIQUE (site_id, code)
);
INSERT INTO machines_rebuilt (id, site_id, line_id, code, name, kind, capabilities, rated_power_kw)
    SELECT id, site_id, line_id, code, name, kind, capabilities, rated_power_kw FROM machines;
DROP TABLE machines;
ALTER TABLE machines_rebuilt RENAME TO machines;

-- materials
CREATE TABLE materials_rebuilt (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    code    TEXT NOT NULL UNIQUE,
    name    TEXT NOT NULL
);
INSERT INTO materials_rebuilt (id, code, name)
    SELECT id, code, name FROM materials;
DROP TABLE materials;
ALTER TABLE materials_rebuilt RENAME TO materials;

-- products
CREATE TABLE products_rebuilt (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    code    TEXT NOT NULL UNIQUE,
    name    TEXT NOT NULL,
    family  TEXT NOT NULL
);
INSERT INTO products_rebuilt (id, code, name, family)
    SELECT id, code, name, family FROM products;
DROP TABLE products;
ALTER TABLE products_rebuilt RENAME TO products;

-- routings
CREATE TABLE routings_rebuilt (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    code    TEXT NOT NULL UNIQUE,
    name    TEXT NOT NULL
);
INSERT INTO routings_rebuilt (id, code, name)
    SELECT id, code, name FROM routings;
DROP TABLE routings;
ALTER TABLE routings_rebuilt RENAME TO routings;

-- variants
CREATE TABLE variants_rebuilt (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    product_id  INTEGER NOT NULL REFERENCES products(id),
    code        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    routing_id  INTEGER REFERENCES routings(id)
);
INSERT INTO variants_rebuilt (id, product_id, code, name, routing_id)
    SELECT id, product_id, code, name, routing_id FROM variants;
DROP TABLE variants;
ALTER TABLE variants_rebuilt RENAME TO variants;

-- orders
CREATE TABLE orders_rebuilt (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    number      TEXT NOT NULL UNIQUE,
    customer    TEXT NOT NULL,
    variant_id  INTEGER NOT NULL REFERENCES variants(id),
    quantity    INTEGER NOT NULL,
    due_ms      INTEGER NOT NULL,
    priority    INTEGER NOT NULL,
    status      TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    material_ready_ms INTEGER,
    finished_ms INTEGER
);
INSERT INTO orders_rebuilt (id, number, customer, variant_id, quantity, due_ms, priority, status, created_ms, material_ready_ms, finished_ms)
    SELECT id, number, customer, variant_id, quantity, due_ms, priority, status, created_ms, material_ready_ms, finished_ms FROM orders;
DROP TABLE orders;
ALTER TABLE orders_rebuilt RENAME TO orders;
CREATE INDEX orders_status ON orders(status, id);
CREATE INDEX orders_due ON orders(due_ms);

-- operations
CREATE TABLE operations_rebuilt (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
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
    progress_ms     INTEGER,
    finished_ms     INTEGER,
    started_ms      INTEGER,
    UNIQUE (order_id, seq)
);
INSERT INTO operations_rebuilt (id, order_id, seq, name, setup_seconds, unit_seconds, setup_family, status, machine_id, good, scrap, progress_ms, finished_ms, started_ms)
    SELECT id, order_id, seq, name, setup_seconds, unit_seconds, setup_family, status, machine_id, good, scrap, progress_ms, finished_ms, started_ms FROM operations;
DROP TABLE operations;
ALTER TABLE operations_rebuilt RENAME TO operations;
CREATE INDEX operations_running ON operations(machine_id, id) WHERE status = 'running';

-- users
CREATE TABLE users_rebuilt (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    username       TEXT NOT NULL UNIQUE,
    role           TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    created_ms     INTEGER NOT NULL,
    site_id        INTEGER REFERENCES sites(id)
);
INSERT INTO users_rebuilt (id, username, role, password_hash, created_ms, site_id)
    SELECT id, username, role, password_hash, created_ms, site_id FROM users;
DROP TABLE users;
ALTER TABLE users_rebuilt RENAME TO users;

-- api_tokens
CREATE TABLE api_tokens_rebuilt (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    token_hash  BLOB NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    revoked_ms  INTEGER,
    expires_ms  INTEGER
);
INSERT INTO api_tokens_rebuilt (id, user_id, name, token_hash, prefix, created_ms, revoked_ms, expires_ms)
    SELECT id, user_id, name, token_hash, prefix, created_ms, revoked_ms, expires_ms FROM api_tokens;
DROP TABLE api_tokens;
ALTER TABLE api_tokens_rebuilt RENAME TO api_tokens;
CREATE INDEX api_tokens_user ON api_tokens(user_id);

-- alarm_rules
CREATE TABLE alarm_rules_rebuilt (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL,
    machine_id   INTEGER REFERENCES machines(id) ON DELETE CASCADE,
    metric       TEXT,
    kind         TEXT NOT NULL,
    param        REAL NOT NULL,
    for_seconds  INTEGER NOT NULL,
    severity     TEXT NOT NULL,
    enabled      INTEGER NOT NULL,
    deadband     REAL NOT NULL DEFAULT 0
);
INSERT INTO alarm_rules_rebuilt (id, name, machine_id, metric, kind, param, for_seconds, severity, enabled, deadband)
    SELECT id, name, machine_id, metric, kind, param, for_seconds, severity, enabled, deadband FROM alarm_rules;
DROP TABLE alarm_rules;
ALTER TABLE alarm_rules_rebuilt RENAME TO alarm_rules;

-- maintenance_windows
CREATE TABLE maintenance_windows_rebuilt (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    machine_id  INTEGER NOT NULL REFERENCES machines(id) ON DELETE CASCADE,
    start_ms    INTEGER NOT NULL,
    end_ms      INTEGER NOT NULL,
    reason      TEXT NOT NULL
);
INSERT INTO maintenance_windows_rebuilt (id, machine_id, start_ms, end_ms, reason)
    SELECT id, machine_id, start_ms, end_ms, reason FROM maintenance_windows;
DROP TABLE maintenance_windows;
ALTER TABLE maintenance_windows_rebuilt RENAME TO maintenance_windows;
CREATE INDEX maintenance_windows_machine ON maintenance_windows(machine_id, start_ms);

-- plans
CREATE TABLE plans_rebuilt (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    created_ms          INTEGER NOT NULL,
    status              TEXT NOT NULL,
    objective           TEXT NOT NULL,
    makespan_ms         INTEGER NOT NULL,
    weighted_tardiness  INTEGER NOT NULL,
    late_orders         INTEGER NOT NULL,
    setup_seconds       INTEGER NOT NULL,
    solve_ms            INTEGER NOT NULL,
    published_ms        INTEGER,
    -- The solver's problem in the scheduler's JSON format, to reproduce or compare the plan.
    problem             TEXT NOT NULL,
    trigger_json        TEXT
);
INSERT INTO plans_rebuilt (id, created_ms, status, objective, makespan_ms, weighted_tardiness, late_orders, setup_seconds, solve_ms, published_ms, problem, trigger_json)
    SELECT id, created_ms, status, objective, makespan_ms, weighted_tardiness, late_orders, setup_seconds, solve_ms, published_ms, problem, trigger_json FROM plans;
DROP TABLE plans;
ALTER TABLE plans_rebuilt RENAME TO plans;
CREATE INDEX plans_status ON plans(status);

-- alarms
CREATE TABLE alarms_rebuilt (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    rule_id          INTEGER REFERENCES alarm_rules(id) ON DELETE SET NULL,
    machine_id       INTEGER NOT NULL REFERENCES machines(id) ON DELETE CASCADE,
    severity         TEXT NOT NULL,
    message          TEXT NOT NULL,
    value            REAL,
    status           TEXT NOT NULL,
    raised_ms        INTEGER NOT NULL,
    acknowledged_by  TEXT,
    acknowledged_ms  INTEGER,
    cleared_ms       INTEGER,
    rule_name        TEXT,
    metric           TEXT,
    condition_kind   TEXT,
    condition_param  REAL
);
INSERT INTO alarms_rebuilt (id, rule_id, machine_id, severity, message, value, status, raised_ms, acknowledged_by, acknowledged_ms, cleared_ms, rule_name, metric, condition_kind, condition_param)
    SELECT id, rule_id, machine_id, severity, message, value, status, raised_ms, acknowledged_by, acknowledged_ms, cleared_ms, rule_name, metric, condition_kind, condition_param FROM alarms;
DROP TABLE alarms;
ALTER TABLE alarms_rebuilt RENAME TO alarms;
CREATE INDEX alarms_status ON alarms(status, id);
CREATE INDEX alarms_open ON alarms(rule_id, machine_id) WHERE status != 'cleared';

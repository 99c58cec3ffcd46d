-- Alarm rules and the alarms they raise. Alarms outlive their rules (rule_id becomes NULL).

CREATE TABLE alarm_rules (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL,
    machine_id   INTEGER REFERENCES machines(id) ON DELETE CASCADE,
    metric       TEXT,
    kind         TEXT NOT NULL,
    param        REAL NOT NULL,
    for_seconds  INTEGER NOT NULL,
    severity     TEXT NOT NULL,
    enabled      INTEGER NOT NULL
);

CREATE TABLE alarms (
    id               INTEGER PRIMARY KEY,
    rule_id          INTEGER REFERENCES alarm_rules(id) ON DELETE SET NULL,
    machine_id       INTEGER NOT NULL REFERENCES machines(id) ON DELETE CASCADE,
    severity         TEXT NOT NULL,
    message          TEXT NOT NULL,
    value            REAL,
    status           TEXT NOT NULL,
    raised_ms        INTEGER NOT NULL,
    acknowledged_by  TEXT,
    acknowledged_ms  INTEGER,
    cleared_ms       INTEGER
);
CREATE INDEX alarms_status ON alarms(status, id);
CREATE INDEX alarms_open ON alarms(rule_id, machine_id) WHERE status != 'cleared';

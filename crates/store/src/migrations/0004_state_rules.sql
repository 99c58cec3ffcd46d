-- Machine states derived from a metric, for machines that do not report states themselves.

CREATE TABLE machine_state_rules (
    machine_id     INTEGER PRIMARY KEY REFERENCES machines(id) ON DELETE CASCADE,
    metric         TEXT NOT NULL,
    running_above  REAL NOT NULL,
    idle_above     REAL NOT NULL,
    otherwise      TEXT NOT NULL
);

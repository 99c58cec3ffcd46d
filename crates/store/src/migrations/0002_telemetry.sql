-- Time series, machine states and production records. Readings are write-once per
-- (series, timestamp): a resent reading is ignored, so roll-ups never count it twice.

CREATE TABLE series (
    id          INTEGER PRIMARY KEY,
    machine_id  INTEGER NOT NULL REFERENCES machines(id) ON DELETE CASCADE,
    metric      TEXT NOT NULL,
    UNIQUE (machine_id, metric)
);

CREATE TABLE readings (
    series_id  INTEGER NOT NULL,
    ts_ms      INTEGER NOT NULL,
    value      REAL NOT NULL,
    PRIMARY KEY (series_id, ts_ms)
) WITHOUT ROWID;

-- One row per series and UTC minute; kept much longer than raw readings.
CREATE TABLE rollups_1m (
    series_id   INTEGER NOT NULL,
    minute_ms   INTEGER NOT NULL,
    min         REAL NOT NULL,
    max         REAL NOT NULL,
    sum         REAL NOT NULL,
    count       INTEGER NOT NULL,
    last        REAL NOT NULL,
    last_ts_ms  INTEGER NOT NULL,
    PRIMARY KEY (series_id, minute_ms)
) WITHOUT ROWID;

CREATE TABLE machine_states (
    machine_id  INTEGER NOT NULL REFERENCES machines(id) ON DELETE CASCADE,
    since_ms    INTEGER NOT NULL,
    state       TEXT NOT NULL,
    reason      TEXT,
    PRIMARY KEY (machine_id, since_ms)
) WITHOUT ROWID;

CREATE TABLE production (
    id                  INTEGER PRIMARY KEY,
    machine_id          INTEGER NOT NULL REFERENCES machines(id) ON DELETE CASCADE,
    ts_ms               INTEGER NOT NULL,
    operation_id        INTEGER REFERENCES operations(id) ON DELETE SET NULL,
    good                INTEGER NOT NULL,
    scrap               INTEGER NOT NULL,
    ideal_unit_seconds  REAL NOT NULL
);
CREATE INDEX production_machine_ts ON production(machine_id, ts_ms);

-- Device accounts publish for one site only.
ALTER TABLE users ADD COLUMN site_id INTEGER REFERENCES sites(id);

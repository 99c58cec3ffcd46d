-- Units that a finish at the station added on a machine with a count rule and that the machine's
-- counter has not reported yet. The counter's next rises, up to `until_ms`, confirm them first
-- instead of counting them a second time (store::telemetry::count_units).
CREATE TABLE unconfirmed_counts (
    machine_id  INTEGER PRIMARY KEY REFERENCES machines(id) ON DELETE CASCADE,
    good        INTEGER NOT NULL,
    scrap       INTEGER NOT NULL,
    until_ms    INTEGER NOT NULL
);

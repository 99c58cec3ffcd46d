-- Production counts derived from cumulative counter metrics, for machines that report counters
-- instead of unit counts (see model::CountRule).

CREATE TABLE machine_count_rules (
    machine_id          INTEGER PRIMARY KEY REFERENCES machines(id) ON DELETE CASCADE,
    good_metric         TEXT NOT NULL,
    scrap_metric        TEXT,
    ideal_unit_seconds  REAL
);

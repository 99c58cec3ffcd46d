-- The time retention last counted telemetry ages back from. It moves on no faster than time
-- really passes (twice as fast to catch up), so a clock stepped ahead by weeks or years, and the
-- readings stamped by it, do not make old data look old.
CREATE TABLE retention_basis (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    basis_ms INTEGER NOT NULL
);

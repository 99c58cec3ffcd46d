-- Planning inputs: planned maintenance per machine, and when an order's material is available.

CREATE TABLE maintenance_windows (
    id          INTEGER PRIMARY KEY,
    machine_id  INTEGER NOT NULL REFERENCES machines(id) ON DELETE CASCADE,
    start_ms    INTEGER NOT NULL,
    end_ms      INTEGER NOT NULL,
    reason      TEXT NOT NULL
);
CREATE INDEX maintenance_windows_machine ON maintenance_windows(machine_id, start_ms);

ALTER TABLE orders ADD COLUMN material_ready_ms INTEGER;

-- A deleted machine's series ids were handed to the next new series, and readings and roll-ups
-- (which refer to series by id, without a foreign key) of the deleted machine came back under
-- that series. Deleting a machine now deletes its readings and roll-ups; here the ones already
-- left behind go, and series get ids that are never reused (AUTOINCREMENT; see 0017).

DELETE FROM readings WHERE series_id NOT IN (SELECT id FROM series);
DELETE FROM rollups_1m WHERE series_id NOT IN (SELECT id FROM series);
DELETE FROM rollups_1h WHERE series_id NOT IN (SELECT id FROM series);

CREATE TABLE series_rebuilt (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    machine_id  INTEGER NOT NULL REFERENCES machines(id) ON DELETE CASCADE,
    metric      TEXT NOT NULL,
    UNIQUE (machine_id, metric)
);
INSERT INTO series_rebuilt (id, machine_id, metric) SELECT id, machine_id, metric FROM series;
DROP TABLE series;
ALTER TABLE series_rebuilt RENAME TO series;

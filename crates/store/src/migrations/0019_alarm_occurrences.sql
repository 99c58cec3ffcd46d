-- An alarm that clears and comes back before anyone acknowledged it is the same alarm again
-- (ISA-18.2: a return to normal, unacknowledged, then active again), not a new row: it counts its
-- occurrences and keeps when the first began. NULL first_raised_ms means raised_ms (one occurrence).
ALTER TABLE alarms ADD COLUMN occurrences INTEGER NOT NULL DEFAULT 1 CHECK (occurrences >= 1);
ALTER TABLE alarms ADD COLUMN first_raised_ms INTEGER;

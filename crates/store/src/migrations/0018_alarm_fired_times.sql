-- When an alarm came up, beside when its condition began: a rule with a delay (or a long stop)
-- fires only once the condition has held that long. Alarms raised before keep NULL.
ALTER TABLE alarms ADD COLUMN fired_ms INTEGER;

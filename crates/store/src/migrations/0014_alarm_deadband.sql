-- The return-to-normal band of an alarm rule (`NewAlarmRule::deadband`); 0 keeps the rules made
-- before it clearing at their limit.
ALTER TABLE alarm_rules ADD COLUMN deadband REAL NOT NULL DEFAULT 0;

-- The alarm list by latest occurrence (`sort=latest`): newest `raised_ms` first, then id.
CREATE INDEX alarms_raised ON alarms(raised_ms, id);

-- When an alarm came up, beside when its condition began: a rule with a delay (or a long stop)
-- fires only once the condition has held that long. Alarms raised before keep NULL.
ALTER TABLE alarms ADD COLUMN fired_ms INTEGER;

-- Device accounts sign in with tokens only and have no password: one kept from an older version
-- goes, so no device account can sign in with a password any more.
UPDATE users SET password_hash = '!' WHERE role = 'device';

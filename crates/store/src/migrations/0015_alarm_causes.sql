-- What raised an alarm, copied from its rule when it is raised (`Alarm::cause`), so that pages can
-- say it in the reader's language and it survives later edits of the rule. Alarms raised before
-- keep only their English message.
ALTER TABLE alarms ADD COLUMN rule_name TEXT;
ALTER TABLE alarms ADD COLUMN metric TEXT;
ALTER TABLE alarms ADD COLUMN condition_kind TEXT;
ALTER TABLE alarms ADD COLUMN condition_param REAL;

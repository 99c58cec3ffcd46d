-- A raised alarm makes its rule's latest alarm on the machine active again when that one cleared
-- unseen. It looked for the latest unseen one instead, which in a store from before alarms came
-- back (0019) could be older than an alarm acknowledged since. The lookup now reads the latest
-- alarm of the rule and machine, through this index.
DROP INDEX alarms_unseen;
CREATE INDEX alarms_rule_machine ON alarms(rule_id, machine_id, id);

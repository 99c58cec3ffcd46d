-- When an operation started on the shop floor (`Operation::started_at`): set as it becomes
-- running. Operations started before keep none.
ALTER TABLE operations ADD COLUMN started_ms INTEGER;

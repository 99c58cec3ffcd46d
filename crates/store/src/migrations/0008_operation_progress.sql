-- When a running operation last showed progress (its start, or its latest unit count), so a
-- re-plan can estimate the work it has left. NULL until the operation starts.
ALTER TABLE operations ADD COLUMN progress_ms INTEGER;

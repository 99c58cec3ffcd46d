-- When a machine was retired (taken out of service for good, kept for its history); NULL while it
-- is in service.
ALTER TABLE machines ADD COLUMN retired_ms INTEGER;

-- Why the platform made and published a plan by itself (an automatic repair), as JSON
-- (`model::PlanTrigger`); NULL for plans asked for through the API.
ALTER TABLE plans ADD COLUMN trigger_json TEXT;

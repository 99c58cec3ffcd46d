-- What a plan's planner should know (JSON list of notes, as `model::PlanNote`), such as a step
-- one unit of which does not fit any shift. NULL: none.
ALTER TABLE plans ADD COLUMN notes_json TEXT;

-- What the person who acknowledged an alarm wrote (what was found, what was done). NULL: nothing.
ALTER TABLE alarms ADD COLUMN ack_note TEXT;

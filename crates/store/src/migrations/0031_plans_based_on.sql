-- The plan that was active when a plan was computed (0: none was), so publishing it can tell,
-- without comparing clock times, whether another was published meanwhile. NULL for plans made
-- before this column, which are judged by their times as before.
ALTER TABLE plans ADD COLUMN based_on INTEGER;

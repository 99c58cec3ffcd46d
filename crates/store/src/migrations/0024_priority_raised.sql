-- When an order's priority was last raised: a released order raised to rush priority after the
-- active plan was made is moved ahead by a repair, as a new rush order is.
ALTER TABLE orders ADD COLUMN priority_raised_ms INTEGER;

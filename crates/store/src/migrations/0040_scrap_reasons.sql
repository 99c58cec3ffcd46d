-- Why scrapped units were scrapped, when the person reporting them said: the scrap Pareto.
ALTER TABLE production ADD COLUMN scrap_reason TEXT;

-- An alarm rule for every machine of one site (`site_id`, without `machine_id`); NULL for a rule
-- of one machine or of every site's machines. A site a rule names cannot be deleted.
ALTER TABLE alarm_rules ADD COLUMN site_id INTEGER REFERENCES sites(id);

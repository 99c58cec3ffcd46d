-- Order numbers are told apart regardless of case (`so-1` is taken by `SO-1`): the lookup by
-- the folded number. Not unique, so a database that already holds such a pair still opens.
CREATE INDEX orders_number_folded ON orders(lower(number));

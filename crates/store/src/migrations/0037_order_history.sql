-- What was done to each order, by whom and when: entered, changed (the fields, from what to
-- what, as JSON), released, cancelled. Gone with the order.
CREATE TABLE order_events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id  INTEGER NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
    at_ms     INTEGER NOT NULL,
    actor     TEXT,
    kind      TEXT NOT NULL,
    changes   TEXT
);
CREATE INDEX order_events_order ON order_events(order_id, id);

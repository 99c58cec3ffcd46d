-- A revision for every change of an order or its operations, counted across all orders, and a
-- record of each order deleted: an integration follows the changes since the revision it last saw
-- (`GET /orders?changed_after=`, `GET /orders/deleted?changed_after=`). Triggers keep them on
-- every update and delete, so every write path does, whatever it changes; the store numbers the
-- orders it creates itself (a trigger on insert, even one that does nothing, costs an import of
-- 100,000 orders about a second).
CREATE TABLE order_revision (value INTEGER NOT NULL);
INSERT INTO order_revision (value) SELECT coalesce(max(id), 0) FROM orders;

ALTER TABLE orders ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
UPDATE orders SET revision = id;
CREATE INDEX orders_revision ON orders(revision);

CREATE TABLE deleted_orders (
    id        INTEGER PRIMARY KEY,
    number    TEXT NOT NULL,
    revision  INTEGER NOT NULL
);
CREATE INDEX deleted_orders_revision ON deleted_orders(revision);

-- Not for the revision's own update (recursive triggers are off in any case).
CREATE TRIGGER orders_revision_on_update AFTER UPDATE ON orders WHEN NEW.revision = OLD.revision
BEGIN
    UPDATE order_revision SET value = value + 1;
    UPDATE orders SET revision = (SELECT value FROM order_revision) WHERE id = NEW.id;
END;

CREATE TRIGGER orders_revision_on_operation AFTER UPDATE ON operations
BEGIN
    UPDATE order_revision SET value = value + 1;
    UPDATE orders SET revision = (SELECT value FROM order_revision) WHERE id = NEW.order_id;
END;

CREATE TRIGGER orders_revision_on_delete AFTER DELETE ON orders
BEGIN
    UPDATE order_revision SET value = value + 1;
    INSERT OR REPLACE INTO deleted_orders (id, number, revision)
    VALUES (OLD.id, OLD.number, (SELECT value FROM order_revision));
END;

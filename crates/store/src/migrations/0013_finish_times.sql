-- When an operation, and an order with its last operation, finished: the actual end that the
-- order list and the order page show instead of a planned one. Orders and operations finished
-- before this migration get the time of their last recorded units, where there is one.
ALTER TABLE operations ADD COLUMN finished_ms INTEGER;
ALTER TABLE orders ADD COLUMN finished_ms INTEGER;
UPDATE operations SET finished_ms = (SELECT max(ts_ms) FROM production WHERE operation_id = operations.id)
    WHERE status = 'done';
UPDATE orders SET finished_ms = (SELECT max(finished_ms) FROM operations WHERE order_id = orders.id)
    WHERE status = 'done';

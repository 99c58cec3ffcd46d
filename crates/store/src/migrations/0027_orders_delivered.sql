-- What a done order delivered (its last step's good units), kept with the order when it finishes
-- instead of looked up in its operations for every order listed.
ALTER TABLE orders ADD COLUMN delivered INTEGER;
UPDATE orders SET delivered = coalesce((SELECT op.good FROM operations op
    WHERE op.order_id = orders.id AND op.status != 'cancelled' ORDER BY op.seq DESC LIMIT 1), 0)
WHERE status = 'done';

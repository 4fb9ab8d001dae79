-- Webhook delivery ids already handled, shared by every replica so a
-- redelivered or replayed webhook is applied once.
CREATE TABLE webhook_deliveries (
    delivery_id TEXT    PRIMARY KEY NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_received_at ON webhook_deliveries (received_at);

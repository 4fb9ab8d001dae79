-- Webhook delivery ids already handled, shared by every replica so a
-- redelivered or replayed webhook is applied once.
CREATE TABLE webhook_deliveries (
    delivery_id TEXT COLLATE "C" PRIMARY KEY,
    received_at BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_received_at ON webhook_deliveries (received_at);

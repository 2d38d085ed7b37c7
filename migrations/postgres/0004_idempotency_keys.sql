-- `Idempotency-Key`s of posted messages (see migrations/sqlite/0006_idempotency_keys.sql).
CREATE TABLE idempotency_keys (
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    key             TEXT NOT NULL,
    message_id      TEXT NOT NULL,
    reply_id        TEXT,
    queued          BOOLEAN NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, key)
);

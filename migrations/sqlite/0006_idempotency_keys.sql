-- `Idempotency-Key`s of posted messages: a retry with a key seen before gets the first
-- answer (the message and the reply it started) instead of storing the message again.
-- Written in the same transaction as the message, by the owning actor (fenced by epoch);
-- kept for 24 h and at most the last 100 per conversation (pruned on each insert).
CREATE TABLE idempotency_keys (
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    key             TEXT NOT NULL,
    message_id      TEXT NOT NULL,
    -- NULL when the message was queued behind a reply in progress.
    reply_id        TEXT,
    queued          BOOLEAN NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, key)
);

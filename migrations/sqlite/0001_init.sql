-- Conversations, their messages, and the bookkeeping that must survive a restart.
CREATE TABLE conversations (
    id              TEXT PRIMARY KEY,
    token_hash      TEXT NOT NULL,
    provider        TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    -- Event numbers below this are used up; a restarted actor continues from here, so an
    -- event number is never reused even after a crash (ids are reserved in blocks).
    event_id_floor  INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE messages (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    text            TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('complete', 'streaming', 'interrupted', 'failed')),
    error           TEXT,
    created_at      INTEGER NOT NULL
);
CREATE INDEX messages_by_conversation ON messages (conversation_id, seq);

-- Webhook deliveries already applied, by source and `webhook-id`; old rows are pruned.
CREATE TABLE webhook_receipts (
    source          TEXT NOT NULL,
    webhook_id      TEXT NOT NULL,
    received_at     INTEGER NOT NULL,
    PRIMARY KEY (source, webhook_id)
);

-- Jobs handed to callback providers: which conversation and reply a provider's job id belongs to.
CREATE TABLE provider_jobs (
    provider        TEXT NOT NULL,
    job_id          TEXT NOT NULL,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    reply_id        TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (provider, job_id)
);
CREATE UNIQUE INDEX provider_jobs_by_reply ON provider_jobs (provider, reply_id);

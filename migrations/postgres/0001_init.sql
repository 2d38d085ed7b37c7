-- The whole schema, as SQLite's migrations 0001–0003 build it (see migrations/sqlite/ for
-- what each column is for). Integers are BIGINT (milliseconds, event numbers, epochs).
CREATE TABLE conversations (
    id              TEXT PRIMARY KEY,
    token_hash      TEXT NOT NULL,
    provider        TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    -- Event numbers below this are used up (reserved in blocks, never reused).
    event_id_floor  BIGINT NOT NULL DEFAULT 1,
    -- Bumped by `claim`; every write of the owning actor carries it (fencing).
    owner_epoch     BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE messages (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    seq             BIGINT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    text            TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('complete', 'streaming', 'interrupted', 'failed')),
    error           TEXT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX messages_by_conversation ON messages (conversation_id, seq);
-- The start-up sweep looks for these only.
CREATE INDEX messages_streaming ON messages (status) WHERE status = 'streaming';

CREATE TABLE webhook_receipts (
    source          TEXT NOT NULL,
    webhook_id      TEXT NOT NULL,
    received_at     BIGINT NOT NULL,
    PRIMARY KEY (source, webhook_id)
);
CREATE INDEX webhook_receipts_by_time ON webhook_receipts (received_at);

CREATE TABLE provider_jobs (
    provider        TEXT NOT NULL,
    job_id          TEXT NOT NULL,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    reply_id        TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (provider, job_id)
);
CREATE UNIQUE INDEX provider_jobs_by_reply ON provider_jobs (provider, reply_id);

-- The replay window (SSE frames) written at a graceful stop.
CREATE TABLE events (
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    id              BIGINT NOT NULL,
    frame           BYTEA NOT NULL,
    PRIMARY KEY (conversation_id, id)
);

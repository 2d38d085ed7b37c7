-- Conversations that belong to someone (API.md "Identity").
-- `owner`: an anonymous browser owner (`anon:…`, named by its session cookie) or an app's
-- user (`jwt:SUB`); NULL for a conversation reachable only by its token.
ALTER TABLE conversations ADD COLUMN owner TEXT;
-- NULL until the first user message (then its first 80 characters) or a rename.
ALTER TABLE conversations ADD COLUMN title TEXT;
-- Milliseconds; the list's order (most recently updated first).
ALTER TABLE conversations ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;
UPDATE conversations SET updated_at = created_at;
CREATE INDEX conversations_by_owner ON conversations (owner, updated_at DESC, id DESC)
    WHERE owner IS NOT NULL;

-- Browser sessions (`cw_session`): only the SHA-256 hash of the cookie's value is stored.
CREATE TABLE sessions (
    token_hash  TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

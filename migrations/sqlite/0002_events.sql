-- The last events of a conversation (its replay window, as SSE frames), written when its
-- actor stops gracefully (idle or shutdown), so a client resuming after the actor comes back
-- still gets a replay instead of a `sync`. After a crash they do not line up with the
-- conversation's event-number floor and are ignored.
CREATE TABLE events (
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    id              INTEGER NOT NULL,
    frame           BLOB NOT NULL,
    PRIMARY KEY (conversation_id, id)
) WITHOUT ROWID;

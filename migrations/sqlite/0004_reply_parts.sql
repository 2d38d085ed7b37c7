-- What a streaming reply gained since its previous checkpoint, one row per checkpoint, so a
-- checkpoint writes only the new text (the writes grow linearly with the reply, not with its
-- square). `byte_offset` is the length (in bytes) of the reply's text before this part.
-- Loading appends, in offset order, each part that continues the text so far (offset =
-- its length); a part already folded in (the final write stores the whole text in
-- `messages`) is skipped, so a leftover row never doubles text. The final write removes them.
CREATE TABLE reply_parts (
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    message_id      TEXT NOT NULL,
    byte_offset     INTEGER NOT NULL,
    text            TEXT NOT NULL,
    PRIMARY KEY (conversation_id, message_id, byte_offset)
) WITHOUT ROWID;

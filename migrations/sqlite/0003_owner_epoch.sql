-- The ownership epoch: bumped by whoever takes over a conversation (`claim`); every write
-- of its actor is applied only while the row still holds the actor's epoch, so a stale
-- writer changes nothing.
ALTER TABLE conversations ADD COLUMN owner_epoch INTEGER NOT NULL DEFAULT 0;

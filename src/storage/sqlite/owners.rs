//! SQLite: who owns a conversation — its owner, title and last update (the owner's list,
//! newest first, keyset-paginated on `(updated_at, id)`), renames and deletes (fenced by
//! the epoch in the same statement) and browser sessions (only a token's hash stored).
//! The Rust around these is `storage::owners`; placeholders are numbered in its bind order.

/// Binds: id, token_hash, provider, created_at, owner.
pub(super) const CREATE: &str = "INSERT INTO conversations \
    (id, token_hash, provider, created_at, updated_at, owner) VALUES (?1, ?2, ?3, ?4, ?4, ?5)";

/// Binds: id.
pub(super) const ACCESS: &str =
    "SELECT token_hash, owner, provider FROM conversations WHERE id = ?1";

/// Binds: id.
pub(super) const SUMMARY: &str =
    "SELECT id, title, provider, created_at, updated_at FROM conversations WHERE id = ?1";

/// Binds: owner, limit.
pub(super) const LIST_FIRST: &str = "SELECT id, title, provider, created_at, updated_at \
    FROM conversations WHERE owner = ?1 ORDER BY updated_at DESC, id DESC LIMIT ?2";

/// Binds: owner, limit, updated_at, id (the cursor: the last row of the previous page).
pub(super) const LIST_AFTER: &str = "SELECT id, title, provider, created_at, updated_at \
    FROM conversations WHERE owner = ?1 AND (updated_at < ?3 OR (updated_at = ?3 AND id < ?4)) \
    ORDER BY updated_at DESC, id DESC LIMIT ?2";

/// Binds: id, epoch, updated_at, default title.
pub(super) const TOUCH: &str = "UPDATE conversations \
    SET updated_at = MAX(updated_at, ?3), title = COALESCE(title, ?4) \
    WHERE id = ?1 AND owner_epoch = ?2";

/// Binds: id, epoch, title.
pub(super) const RENAME: &str =
    "UPDATE conversations SET title = ?3 WHERE id = ?1 AND owner_epoch = ?2";

/// Binds: id, epoch. Messages, stored events and provider jobs go with it (cascade).
pub(super) const DELETE: &str = "DELETE FROM conversations WHERE id = ?1 AND owner_epoch = ?2";

/// Binds: token_hash, owner, created_at, expires_at.
pub(super) const CREATE_SESSION: &str = "INSERT INTO sessions \
    (token_hash, owner, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)";

/// Binds: token_hash, now.
pub(super) const SESSION_OWNER: &str =
    "SELECT owner FROM sessions WHERE token_hash = ?1 AND expires_at > ?2";

/// Binds: token_hash.
pub(super) const DELETE_SESSION: &str = "DELETE FROM sessions WHERE token_hash = ?1";

/// Binds: now.
pub(super) const PRUNE_SESSIONS: &str = "DELETE FROM sessions WHERE expires_at <= ?1";

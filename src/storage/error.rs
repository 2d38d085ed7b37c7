//! [`StoreError`]: what went wrong in storage, by kind, the same on both backends. Callers
//! tell the cases apart by variant (a unique key taken, the database unreachable, a write
//! refused by the ownership epoch, data that does not decode). `Display` names the kind
//! and the driver's error *kind* or code only (`database unavailable (i/o)`, `(SQLSTATE
//! 23505)`): it goes to WARN logs and, via the web layer, to the log of a 5xx, and driver
//! texts can hold values, SQL and addresses. The driver's error is kept as the `source`
//! (and in `Debug`) for whoever needs it at debug level.

use std::borrow::Cow;

/// A storage failure. `Display` is for logs (no internals, see the module docs), never
/// for clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A primary key or unique index already holds this value.
    #[error("unique key taken ({})", driver(.0))]
    UniqueViolation(#[source] sqlx::Error),
    /// The database cannot be reached right now (connection refused or closed, the pool
    /// timed out, the server is shutting down or starting, SQLite busy past its timeout).
    /// Transient: the same call may succeed later; the web layer answers 503.
    #[error("database unavailable ({})", driver(.0))]
    Unavailable(#[source] sqlx::Error),
    /// A conversation write carried an ownership epoch that is no longer current: another
    /// actor (on this node or another) has claimed the conversation since. Nothing changed.
    #[error("conversation {conversation}: write of epoch {epoch} refused (not the owner any more)")]
    Fenced { conversation: String, epoch: i64 },
    /// No conversation with this id (for calls that need one to exist).
    #[error("no conversation {0}")]
    NotFound(String),
    /// Stored data that chatwire would not have written (or cannot decode).
    #[error("corrupt data")]
    Corrupt(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The schema could not be brought up to date.
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Anything else the driver reports (a constraint other than uniqueness, a bad URL…).
    #[error("database error ({})", driver(.0))]
    Other(#[source] sqlx::Error),
}

/// What may be shown of a driver error: its kind, or a database's error code.
fn driver(e: &sqlx::Error) -> String {
    use sqlx::Error as E;
    match e {
        E::Database(db) => match db.code() {
            Some(c) if c.len() == 5 => format!("SQLSTATE {c}"),
            Some(c) => format!("code {c}"),
            None => "database error".into(),
        },
        E::Io(io) => format!("i/o: {:?}", io.kind()),
        E::Tls(_) => "tls".into(),
        E::PoolTimedOut => "pool timed out".into(),
        E::PoolClosed => "pool closed".into(),
        E::WorkerCrashed => "worker crashed".into(),
        E::Protocol(_) => "protocol".into(),
        E::BeginFailed => "begin failed".into(),
        E::Configuration(_) => "configuration".into(),
        E::RowNotFound => "row not found".into(),
        _ => "driver error".into(),
    }
}

impl StoreError {
    /// Transient: the database is unreachable, so retrying later may succeed.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }

    /// A corrupt-data error from a description (a value chatwire does not know).
    pub(super) fn corrupt(what: impl Into<String>) -> Self {
        StoreError::Corrupt(what.into().into())
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match &e {
            E::Io(_)
            | E::Tls(_)
            | E::PoolTimedOut
            | E::PoolClosed
            | E::WorkerCrashed
            | E::Protocol(_)
            | E::BeginFailed => StoreError::Unavailable(e),
            E::RowNotFound
            | E::TypeNotFound { .. }
            | E::ColumnIndexOutOfBounds { .. }
            | E::ColumnNotFound(_)
            | E::ColumnDecode { .. }
            | E::Decode(_) => StoreError::Corrupt(Box::new(e)),
            E::Database(db) => {
                if db.kind() == sqlx::error::ErrorKind::UniqueViolation {
                    StoreError::UniqueViolation(e)
                } else if transient_code(db.code()) {
                    StoreError::Unavailable(e)
                } else if corrupt_code(db.code()) {
                    StoreError::Corrupt(Box::new(e))
                } else {
                    StoreError::Other(e)
                }
            }
            _ => StoreError::Other(e),
        }
    }
}

/// A database error code: PostgreSQL's five-character SQLSTATE, or SQLite's numeric
/// (extended) result code, of which the low byte is the primary code.
enum Code {
    Sqlstate(String),
    Sqlite(i64),
}

fn code(code: Option<Cow<'_, str>>) -> Option<Code> {
    let code = code?;
    if code.len() == 5 {
        return Some(Code::Sqlstate(code.into_owned()));
    }
    code.parse::<i64>().ok().map(|n| Code::Sqlite(n & 0xff))
}

/// Codes that mean "not now" rather than "never": PostgreSQL's class 08 (connection
/// exception), 57P01–57P03 (shutting down, crashed, starting up), 53300 (too many
/// connections), 40001/40P01 (serialization failure, deadlock); SQLite's SQLITE_BUSY and
/// SQLITE_LOCKED.
fn transient_code(c: Option<Cow<'_, str>>) -> bool {
    match code(c) {
        Some(Code::Sqlstate(s)) => {
            s.starts_with("08")
                || matches!(
                    &*s,
                    "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01"
                )
        }
        Some(Code::Sqlite(n)) => matches!(n, 5 | 6),
        None => false,
    }
}

/// PostgreSQL's class XX (internal error, data corrupted); SQLite's SQLITE_CORRUPT and
/// SQLITE_NOTADB.
fn corrupt_code(c: Option<Cow<'_, str>>) -> bool {
    match code(c) {
        Some(Code::Sqlstate(s)) => s.starts_with("XX"),
        Some(Code::Sqlite(n)) => matches!(n, 11 | 26),
        None => false,
    }
}

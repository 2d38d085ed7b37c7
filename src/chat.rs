//! Messages: what a conversation's history is made of, in the shape API clients see.

use std::str::FromStr;

use serde::{Serialize, Serializer};

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

/// Where a message stands. Only assistant replies are ever anything but `Complete`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Complete,
    Streaming,
    Interrupted,
    Failed,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Complete => "complete",
            Status::Streaming => "streaming",
            Status::Interrupted => "interrupted",
            Status::Failed => "failed",
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "user" => Ok(Role::User),
            "assistant" => Ok(Role::Assistant),
            other => Err(format!("unknown role `{other}`")),
        }
    }
}

impl FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "complete" => Ok(Status::Complete),
            "streaming" => Ok(Status::Streaming),
            "interrupted" => Ok(Status::Interrupted),
            "failed" => Ok(Status::Failed),
            other => Err(format!("unknown status `{other}`")),
        }
    }
}

/// One message of a conversation (API.md's MESSAGE, plus `error` for failed replies).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub id: String,
    pub role: Role,
    pub text: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(serialize_with = "as_rfc3339")]
    pub created_at: i64,
}

fn as_rfc3339<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::ids::rfc3339(*ms))
}

impl Message {
    pub fn user(text: String) -> Self {
        Message {
            id: crate::ids::message_id(),
            role: Role::User,
            text,
            status: Status::Complete,
            error: None,
            created_at: crate::ids::now_ms(),
        }
    }

    pub fn streaming_reply() -> Self {
        Message {
            id: crate::ids::message_id(),
            role: Role::Assistant,
            text: String::new(),
            status: Status::Streaming,
            error: None,
            created_at: crate::ids::now_ms(),
        }
    }
}

//! Commands for a conversation owned by another node: encoded here, carried by
//! `cluster::rpc`, run there by the owner's local actor, answered as the same values a
//! local call returns. The calling node has checked the caller's credential already.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::handle::{ActorError, IfBusy, Posted, Refusal, Snapshot};
use super::presence::BotState;
use super::registry::Registry;
use crate::chat::Message;
use crate::cluster::ClusterError;
use crate::cluster::rpc::{Inbox, Request, Rpc};
use crate::providers::{Callback, CallbackAck};

/// How long a forwarded command may take before the caller answers 503.
pub(crate) const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Op {
    Post {
        id: String,
        text: String,
        if_busy: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    },
    Regenerate {
        id: String,
    },
    Edit {
        id: String,
        message_id: String,
        text: String,
    },
    Interrupt {
        id: String,
    },
    Typing {
        id: String,
        participant: String,
        active: bool,
    },
    Snapshot {
        id: String,
    },
    Join {
        id: String,
    },
    Rename {
        id: String,
        title: String,
    },
    Delete {
        id: String,
    },
    /// A verified, deduped provider callback that reached another node's webhook route.
    Callback {
        id: String,
        reply_id: String,
        callback: Callback,
    },
}

impl Op {
    fn conversation(&self) -> &str {
        match self {
            Op::Post { id, .. }
            | Op::Regenerate { id }
            | Op::Edit { id, .. }
            | Op::Interrupt { id }
            | Op::Typing { id, .. }
            | Op::Snapshot { id }
            | Op::Join { id }
            | Op::Rename { id, .. }
            | Op::Delete { id }
            | Op::Callback { id, .. } => id,
        }
    }
}

/// A message as it crosses between nodes (the API shape's timestamp is text).
#[derive(Serialize, Deserialize)]
struct WireMessage {
    id: String,
    role: String,
    text: String,
    status: String,
    error: Option<String>,
    created_at: i64,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct WireSnapshot {
    id: String,
    provider: String,
    messages: Vec<WireMessage>,
    last_event_id: u64,
}

impl From<Snapshot> for WireSnapshot {
    fn from(s: Snapshot) -> Self {
        WireSnapshot {
            id: s.id,
            provider: s.provider,
            messages: s
                .messages
                .into_iter()
                .map(|m| WireMessage {
                    id: m.id,
                    role: m.role.as_str().into(),
                    text: m.text,
                    status: m.status.as_str().into(),
                    error: m.error,
                    created_at: m.created_at,
                })
                .collect(),
            last_event_id: s.last_event_id,
        }
    }
}

impl WireSnapshot {
    fn into_snapshot(self) -> Result<Snapshot, ActorError> {
        let bad = |e: String| ActorError::Storage(e);
        let messages = self
            .messages
            .into_iter()
            .map(|m| {
                Ok(Message {
                    id: m.id,
                    role: m.role.parse().map_err(bad)?,
                    text: m.text,
                    status: m.status.parse().map_err(bad)?,
                    error: m.error,
                    created_at: m.created_at,
                })
            })
            .collect::<Result<_, ActorError>>()?;
        Ok(Snapshot {
            id: self.id,
            provider: self.provider,
            messages,
            last_event_id: self.last_event_id,
        })
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct WirePosted {
    message_id: String,
    reply_id: Option<String>,
    queued: bool,
}

/// The owner's presence state, for a session joining on another node.
#[derive(Serialize, Deserialize)]
pub(crate) struct WireJoin {
    pub(crate) bot: String,
    pub(crate) typing: Vec<String>,
}

pub(crate) fn bot_state(s: &str) -> BotState {
    match s {
        "thinking" => BotState::Thinking,
        "streaming" => BotState::Streaming,
        _ => BotState::Idle,
    }
}

fn bot_name(b: BotState) -> &'static str {
    match b {
        BotState::Idle => "idle",
        BotState::Thinking => "thinking",
        BotState::Streaming => "streaming",
    }
}

fn if_busy_name(b: IfBusy) -> &'static str {
    match b {
        IfBusy::Interrupt => "interrupt",
        IfBusy::Queue => "queue",
        IfBusy::Reject => "reject",
    }
}

const REFUSALS: [(Refusal, &str); 5] = [
    (Refusal::Replying, "refused_replying"),
    (Refusal::QueueFull, "refused_queue_full"),
    (Refusal::NoReply, "refused_no_reply"),
    (Refusal::UnknownMessage, "refused_unknown_message"),
    (Refusal::NotUserMessage, "refused_not_user_message"),
];

fn error_code(e: &ActorError) -> &'static str {
    match e {
        ActorError::Refused(r) => REFUSALS
            .iter()
            .find(|(x, _)| x == r)
            .map_or("refused", |(_, code)| code),
        ActorError::Busy => "busy",
        ActorError::Gone => "gone",
        ActorError::NotFound => "not_found",
        ActorError::Full => "full",
        ActorError::Storage(_) => "storage",
        ActorError::Unreachable => "unavailable",
        ActorError::Unavailable(_) => "storage_unavailable",
    }
}

fn from_remote(e: ClusterError) -> ActorError {
    match e {
        ClusterError::Remote(code) => match code.as_str() {
            "not_found" => ActorError::NotFound,
            "full" => ActorError::Full,
            "busy" => ActorError::Busy,
            c if c.starts_with("refused_") => REFUSALS
                .iter()
                .find(|(_, code)| *code == c)
                .map_or(ActorError::Unreachable, |(r, _)| ActorError::Refused(*r)),
            // The command did not run there: the owner moved or is stopping (the caller
            // looks for the new owner).
            "gone" | "not_owner" => ActorError::Gone,
            "storage_unavailable" => {
                ActorError::Unavailable("storage unavailable at the owning node".into())
            }
            _ => ActorError::Unreachable,
        },
        _ => ActorError::Unreachable,
    }
}

/// Sends `op` to `node` and decodes its answer.
pub(crate) async fn call<T: for<'de> Deserialize<'de>>(
    rpc: &Rpc,
    node: &str,
    op: &Op,
) -> Result<T, ActorError> {
    let body = serde_json::to_vec(op).map_err(|e| ActorError::Storage(e.to_string()))?;
    let answer = rpc
        .call(node, &body, FORWARD_TIMEOUT)
        .await
        .map_err(from_remote)?;
    serde_json::from_slice(&answer).map_err(|e| ActorError::Storage(e.to_string()))
}

pub(crate) async fn post(
    rpc: &Rpc,
    node: &str,
    id: &str,
    text: String,
    if_busy: IfBusy,
    key: Option<String>,
) -> Result<Posted, ActorError> {
    let op = Op::Post {
        id: id.into(),
        text,
        if_busy: if_busy_name(if_busy).into(),
        key,
    };
    let p: WirePosted = call(rpc, node, &op).await?;
    Ok(p.into())
}

pub(crate) async fn edit(
    rpc: &Rpc,
    node: &str,
    id: &str,
    message_id: String,
    text: String,
) -> Result<Posted, ActorError> {
    let op = Op::Edit {
        id: id.into(),
        message_id,
        text,
    };
    let p: WirePosted = call(rpc, node, &op).await?;
    Ok(p.into())
}

impl From<WirePosted> for Posted {
    fn from(p: WirePosted) -> Self {
        Posted {
            message_id: p.message_id,
            reply_id: p.reply_id,
            queued: p.queued,
        }
    }
}

impl From<Posted> for WirePosted {
    fn from(p: Posted) -> Self {
        WirePosted {
            message_id: p.message_id,
            reply_id: p.reply_id,
            queued: p.queued,
        }
    }
}

const ACKS: [(CallbackAck, &str); 3] = [
    (CallbackAck::Accepted, "accepted"),
    (CallbackAck::Late, "late"),
    (CallbackAck::Busy, "busy"),
];

/// Hands a provider callback to the owning node's actor; what it did with it.
pub(crate) async fn callback(
    rpc: &Rpc,
    node: &str,
    id: &str,
    reply_id: String,
    callback: Callback,
) -> Result<CallbackAck, ActorError> {
    let op = Op::Callback {
        id: id.into(),
        reply_id,
        callback,
    };
    let ack: String = call(rpc, node, &op).await?;
    ACKS.iter()
        .find(|(_, name)| *name == ack)
        .map(|(a, _)| *a)
        .ok_or(ActorError::Unreachable)
}

pub(crate) async fn snapshot(rpc: &Rpc, node: &str, id: &str) -> Result<Snapshot, ActorError> {
    let s: WireSnapshot = call(rpc, node, &Op::Snapshot { id: id.into() }).await?;
    s.into_snapshot()
}

/// Answers the requests other nodes send this one, each on its own short task, until the
/// inbox closes (at shutdown). Only a conversation whose actor runs here is served.
pub(crate) async fn serve(registry: Arc<Registry>, rpc: Rpc, mut inbox: Inbox) {
    while let Some(request) = inbox.recv().await {
        let (registry, rpc) = (registry.clone(), rpc.clone());
        tokio::spawn(async move {
            let answer = answer(&registry, &request).await;
            match answer {
                Ok(body) => rpc.answer(&request, Ok(&body)).await,
                Err(code) => rpc.answer(&request, Err(code)).await,
            }
        });
    }
}

async fn answer(registry: &Registry, request: &Request) -> Result<Vec<u8>, &'static str> {
    let op: Op = serde_json::from_slice(&request.body).map_err(|_| "bad_request")?;
    let handle = registry.running(op.conversation()).ok_or("not_owner")?;
    let body = match op {
        Op::Post {
            text, if_busy, key, ..
        } => {
            let if_busy = if_busy.parse().unwrap_or(IfBusy::Interrupt);
            let p = handle
                .post(text, if_busy, key)
                .await
                .map_err(|e| error_code(&e))?;
            serde_json::to_vec(&WirePosted::from(p))
        }
        Op::Regenerate { .. } => {
            serde_json::to_vec(&handle.regenerate().await.map_err(|e| error_code(&e))?)
        }
        Op::Edit {
            message_id, text, ..
        } => {
            let p = handle
                .edit(message_id, text)
                .await
                .map_err(|e| error_code(&e))?;
            serde_json::to_vec(&WirePosted::from(p))
        }
        Op::Interrupt { .. } => {
            serde_json::to_vec(&handle.interrupt().await.map_err(|e| error_code(&e))?)
        }
        Op::Typing {
            participant,
            active,
            ..
        } => {
            handle.typing(participant.into(), active);
            serde_json::to_vec(&())
        }
        Op::Snapshot { .. } => {
            let s = handle.snapshot().await.map_err(|e| error_code(&e))?;
            serde_json::to_vec(&WireSnapshot::from(s))
        }
        Op::Rename { title, .. } => {
            serde_json::to_vec(&handle.rename(title).await.map_err(|e| error_code(&e))?)
        }
        Op::Delete { .. } => {
            serde_json::to_vec(&handle.delete().await.map_err(|e| error_code(&e))?)
        }
        Op::Callback {
            reply_id, callback, ..
        } => {
            let ack = handle
                .provider_callback(reply_id, callback)
                .await
                .map_err(|e| error_code(&e))?;
            let name = ACKS
                .iter()
                .find(|(a, _)| *a == ack)
                .map_or("late", |(_, n)| n);
            serde_json::to_vec(name)
        }
        Op::Join { .. } => {
            let p = handle.join().await.map_err(|e| error_code(&e))?;
            serde_json::to_vec(&WireJoin {
                bot: bot_name(p.bot).into(),
                typing: p.typing.iter().map(|t| t.to_string()).collect(),
            })
        }
    };
    body.map_err(|_| "internal")
}

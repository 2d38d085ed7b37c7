//! Redis key and channel names. Every per-conversation name carries the conversation id in
//! a hash tag (`{…}`), so one conversation's keys stay on one Redis Cluster slot. (The
//! batched append script spans conversations, so today one Redis server is required.)

/// The lease: `"<node>:<token>"`, with a time to live.
pub fn lease(conversation: &str) -> String {
    format!("cw:{{{conversation}}}:lease")
}

/// The numbered event log (a stream; entry id `N-0` is event `N`).
pub fn log(conversation: &str) -> String {
    format!("cw:{{{conversation}}}:log")
}

/// Live frames, published by the append script.
pub fn live(conversation: &str) -> String {
    format!("cw:{{{conversation}}}:live")
}

/// Presence frames (typing, bot state, interrupted), published by the owner.
pub fn presence(conversation: &str) -> String {
    format!("cw:{{{conversation}}}:presence")
}

/// Requests to node `node`, and answers to requests it made.
pub fn node(node: &str) -> String {
    format!("cw:node:{node}")
}

/// The sorted set of conversations with a reply running, scored by lease deadline (ms).
pub const REPLYING: &str = "cw:replying";

/// Parked provider callbacks that arrived before their job id was known.
pub fn parked(job: &str) -> String {
    format!("cw:parked:{job}")
}

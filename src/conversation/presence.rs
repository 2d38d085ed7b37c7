//! Presence: who is typing, what the bot is doing, which reply was interrupted.
//!
//! Presence is ephemeral: these frames are not numbered and not replayed. The actor keeps
//! it in a [`PresenceHub`] and publishes it on a broadcast channel separate from the
//! numbered events; WebSocket sessions forward it (leaving out a participant's own typing).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::broadcast;
use tokio::time::Instant;

/// A participant silent this long counts as no longer typing.
pub const TYPING_EXPIRY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BotState {
    Idle,
    /// Waiting for the first token.
    Thinking,
    Streaming,
}

/// One WebSocket text frame for every participant, serialised once.
#[derive(Debug, Clone)]
pub struct PresenceFrame {
    /// The participant it is about, so that participant's own session can skip it.
    pub from: Option<Arc<str>>,
    pub json: Arc<str>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Wire<'a> {
    Typing {
        participant_id: &'a str,
        active: bool,
    },
    Bot {
        state: BotState,
    },
    Interrupted {
        reply_id: &'a str,
    },
}

fn encode(w: &Wire<'_>) -> Arc<str> {
    serde_json::to_string(w).unwrap_or_default().into()
}

impl PresenceFrame {
    pub fn typing(participant: &Arc<str>, active: bool) -> Self {
        PresenceFrame {
            from: Some(participant.clone()),
            json: encode(&Wire::Typing {
                participant_id: participant,
                active,
            }),
        }
    }

    pub fn bot(state: BotState) -> Self {
        PresenceFrame {
            from: None,
            json: encode(&Wire::Bot { state }),
        }
    }

    /// A frame received from the owner on another node: its text as is, and for a typing
    /// frame the participant it is about.
    pub fn from_json(json: &[u8]) -> Option<Self> {
        #[derive(serde::Deserialize)]
        struct About {
            participant_id: Option<String>,
        }
        let text = std::str::from_utf8(json).ok()?;
        let about: About = serde_json::from_str(text).ok()?;
        Some(PresenceFrame {
            from: about.participant_id.map(Into::into),
            json: text.into(),
        })
    }

    /// Is this the bot going idle (a reply ended)? Compared as text: every node encodes it
    /// the same way.
    pub fn is_bot_idle(&self) -> bool {
        self.from.is_none()
            && *self.json
                == *encode(&Wire::Bot {
                    state: BotState::Idle,
                })
    }

    pub fn interrupted(reply_id: &str) -> Self {
        PresenceFrame {
            from: None,
            json: encode(&Wire::Interrupted { reply_id }),
        }
    }
}

/// What a new WebSocket participant gets.
pub struct Presence {
    pub bot: BotState,
    /// Who is typing right now, so a newcomer sees it without waiting for the next change.
    pub typing: Vec<Arc<str>>,
    pub live: broadcast::Receiver<PresenceFrame>,
}

/// An actor's presence: the bot's state, who is typing, and the channel that announces
/// every change to the conversation's WebSocket sessions.
pub(crate) struct PresenceHub {
    bot: BotState,
    typists: Typists,
    live: broadcast::Sender<PresenceFrame>,
    /// In cluster mode: frames announced this turn, for every node (`None` on one node).
    outbox: Option<Vec<PresenceFrame>>,
}

impl PresenceHub {
    /// Cluster mode: keep each turn's frames for the other nodes.
    pub(crate) fn keep_outbox(&mut self) {
        self.outbox = Some(Vec::new());
    }

    /// The frames announced since the last call (cluster mode).
    pub(crate) fn take_outbox(&mut self) -> Vec<PresenceFrame> {
        self.outbox.as_mut().map(std::mem::take).unwrap_or_default()
    }

    pub(crate) fn new() -> Self {
        // Presence is a trickle (typing, bot state); 16 slots keep idle conversations small.
        let (live, _) = broadcast::channel(16);
        PresenceHub {
            bot: BotState::Idle,
            typists: Typists::default(),
            live,
            outbox: None,
        }
    }

    /// Sends a frame to every session; nobody listening is fine.
    pub(crate) fn announce(&mut self, frame: PresenceFrame) {
        if let Some(outbox) = self.outbox.as_mut() {
            outbox.push(frame.clone());
        }
        let _ = self.live.send(frame);
    }

    pub(crate) fn set_bot(&mut self, state: BotState) {
        if self.bot != state {
            self.bot = state;
            self.announce(PresenceFrame::bot(state));
        }
    }

    /// A participant's typing report; announced only when it changes something.
    pub(crate) fn typing(&mut self, who: &Arc<str>, active: bool, now: Instant) {
        if self.typists.set(who, active, now) {
            self.announce(PresenceFrame::typing(who, active));
        }
    }

    /// The next moment someone's typing expires.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.typists.next_expiry()
    }

    /// Announces the end of every typing that expires by `now`.
    pub(crate) fn expire(&mut self, now: Instant) {
        for who in self.typists.expire(now) {
            self.announce(PresenceFrame::typing(&who, false));
        }
    }

    /// A newcomer's view: the state now and the live channel, in one step.
    pub(crate) fn join(&self) -> Presence {
        Presence {
            bot: self.bot,
            typing: self.typists.who().cloned().collect(),
            live: self.live.subscribe(),
        }
    }

    /// WebSocket sessions listening.
    pub(crate) fn listeners(&self) -> usize {
        self.live.receiver_count()
    }
}

/// Who is typing, each with the moment their typing expires.
#[derive(Debug, Default)]
pub struct Typists {
    until: HashMap<Arc<str>, Instant>,
}

impl Typists {
    /// Records a typing report; returns `true` if the participant's state changed.
    pub fn set(&mut self, who: &Arc<str>, active: bool, now: Instant) -> bool {
        if active {
            self.until
                .insert(who.clone(), now + TYPING_EXPIRY)
                .is_none()
        } else {
            self.until.remove(who).is_some()
        }
    }

    /// The next moment someone's typing expires.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.until.values().min().copied()
    }

    /// Removes and returns everyone whose typing has expired by `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<Arc<str>> {
        let gone: Vec<Arc<str>> = self
            .until
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(p, _)| p.clone())
            .collect();
        for p in &gone {
            self.until.remove(p);
        }
        gone
    }

    /// Everyone typing now.
    pub fn who(&self) -> impl Iterator<Item = &Arc<str>> {
        self.until.keys()
    }
}

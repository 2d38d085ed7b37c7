//! One WebSocket session: one participant of one conversation, one task.
//!
//! A single `select!` loop reads the client's frames, forwards the actor's presence frames
//! (leaving out this participant's own typing), pings, and releases held typing reports.
//! It never blocks the actor: typing goes in with `try_send` and presence comes out of a
//! broadcast channel, where falling behind only loses ephemeral frames (and we re-join to
//! learn the current state). An interrupt goes to the actor and its answer is awaited
//! beside the loop, one at a time, so presence keeps flowing meanwhile. Every write is
//! bounded by a timeout, so a peer that stops reading costs at most that long.
//!
//! Endings: the client closes (we echo and read to the end), bad input in bulk (1008),
//! oversize or broken frames (1009/1007/1002), no answer to two pings, or the server or the
//! conversation stopping (1001, "going away", after the actor's last frames). In every case
//! the participant stops counting as typing.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, close_code};
use bytes::Bytes;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio::time::error::Elapsed;
use tokio::time::{Instant, MissedTickBehavior, sleep_until, timeout};
use tokio_util::sync::CancellationToken;

use super::close::{End, finish, read_error, send};
use super::protocol::{self, ClientFrame, FrameError};
use super::throttle::{Strikes, TypingGate};
use crate::config::Config;
use crate::conversation::{ActorError, BotState, ConversationRef, Presence, PresenceFrame};

/// Longest wait for the actor to answer (interrupt, re-join).
const ASK_TIMEOUT: Duration = Duration::from_secs(5);
/// At shutdown, how long we wait for the actor's last frames before closing.
const FAREWELL_WAIT: Duration = Duration::from_secs(1);

pub(super) struct Session {
    conv: ConversationRef,
    me: Arc<str>,
    bot: BotState,
    typing_now: Vec<Arc<str>>,
    presence: broadcast::Receiver<PresenceFrame>,
    shutdown: CancellationToken,
    ping_every: Duration,
}

/// The actor's answer to an interrupt, awaited beside the loop.
type Asking =
    Pin<Box<dyn Future<Output = Result<Result<Option<String>, ActorError>, Elapsed>> + Send>>;

/// What changes while the session runs.
struct Live {
    socket: WebSocket,
    typing: TypingGate,
    strikes: Strikes,
    last_heard: Instant,
    /// The interrupt in flight, if any. The actor answers after storing the reply; the loop
    /// keeps forwarding presence (the `interrupted` frame comes first) meanwhile, and further
    /// interrupts from this client while one is in flight are redundant and dropped.
    interrupting: Option<Asking>,
}

/// The answer to the interrupt in flight; pending forever when there is none.
async fn answer(
    asking: &mut Option<Asking>,
) -> Result<Result<Option<String>, ActorError>, Elapsed> {
    match asking {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

impl Session {
    pub(super) fn new(
        conv: ConversationRef,
        presence: Presence,
        shutdown: CancellationToken,
        config: &Config,
    ) -> Self {
        Session {
            conv,
            me: crate::ids::participant_id().into(),
            bot: presence.bot,
            typing_now: presence.typing,
            presence: presence.live,
            shutdown,
            ping_every: config.limits.ws_ping,
        }
    }

    pub(super) async fn run(mut self, socket: WebSocket) {
        let now = Instant::now();
        let mut live = Live {
            socket,
            typing: TypingGate::default(),
            strikes: Strikes::new(now),
            last_heard: now,
            interrupting: None,
        };
        tracing::debug!(conversation = %self.conv.id(), participant = %self.me, "WebSocket open");
        let end = match self.greet(&mut live).await {
            true => self.serve(&mut live).await,
            false => End::Gone,
        };
        if live.typing.is_active() {
            self.conv.typing(self.me.clone(), false);
        }
        finish(live.socket, end).await;
        tracing::debug!(conversation = %self.conv.id(), participant = %self.me, "WebSocket closed");
    }

    /// `hello`, then the bot's state and who is typing right now.
    async fn greet(&mut self, live: &mut Live) -> bool {
        let mut frames = vec![protocol::hello(&self.me)];
        frames.push(PresenceFrame::bot(self.bot).json.to_string());
        for who in std::mem::take(&mut self.typing_now) {
            frames.push(PresenceFrame::typing(&who, true).json.to_string());
        }
        for f in frames {
            if !send(&mut live.socket, Message::text(f)).await {
                return false;
            }
        }
        true
    }

    async fn serve(&mut self, live: &mut Live) -> End {
        let conv_done = self.conv.ended();
        let every = self.ping_every;
        let mut ping = tokio::time::interval_at(Instant::now() + every, every);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let typing_due = live.typing.due();
            tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return self.farewell(live, &conv_done).await,
                _ = conv_done.cancelled() => {
                    self.drain_presence(live).await;
                    return End::Close(close_code::AWAY, "conversation closed");
                }
                msg = live.socket.recv() => match msg {
                    Some(Ok(msg)) => {
                        live.last_heard = Instant::now();
                        if let Some(end) = self.on_message(live, msg).await {
                            return end;
                        }
                    }
                    Some(Err(e)) => return read_error(e),
                    None => return End::Gone,
                },
                frame = self.presence.recv() => match frame {
                    Ok(frame) => {
                        if !self.forward(live, &frame).await {
                            return End::Gone;
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        if !self.rejoin(live).await {
                            return End::Gone;
                        }
                    }
                    Err(RecvError::Closed) => {
                        return End::Close(close_code::AWAY, "conversation closed");
                    }
                },
                _ = ping.tick() => {
                    if live.last_heard.elapsed() > every * 2 {
                        tracing::debug!(participant = %self.me, "no answer to two pings");
                        return End::Dead;
                    }
                    if !send(&mut live.socket, Message::Ping(Bytes::new())).await {
                        return End::Gone;
                    }
                }
                answered = answer(&mut live.interrupting) => {
                    live.interrupting = None;
                    if let Some(end) = self.interrupted(live, answered).await {
                        return end;
                    }
                }
                _ = sleep_until(typing_due.unwrap_or_else(Instant::now)), if typing_due.is_some() => {
                    if let Some(active) = live.typing.take_due(Instant::now()) {
                        self.conv.typing(self.me.clone(), active);
                    }
                }
            }
        }
    }

    /// One frame from the client; `Some` ends the session.
    async fn on_message(&mut self, live: &mut Live, msg: Message) -> Option<End> {
        let frame = match msg {
            Message::Text(text) => protocol::parse(text.as_str()),
            Message::Binary(_) => Err(FrameError::BINARY),
            // Pongs only prove the peer is alive; pings are answered by the library.
            Message::Ping(_) | Message::Pong(_) => return None,
            Message::Close(_) => return Some(End::PeerClosed),
        };
        match frame {
            Ok(ClientFrame::Typing(active)) => {
                if let Some(active) = live.typing.report(active, Instant::now()) {
                    self.conv.typing(self.me.clone(), active);
                }
                None
            }
            Ok(ClientFrame::Interrupt) => {
                if live.interrupting.is_none() {
                    let conv = self.conv.clone();
                    live.interrupting = Some(Box::pin(async move {
                        timeout(ASK_TIMEOUT, conv.interrupt()).await
                    }));
                }
                None
            }
            Err(e) => {
                if live.strikes.hit(Instant::now()) {
                    return Some(End::Close(close_code::POLICY, "too many bad frames"));
                }
                self.error(live, &e).await
            }
        }
    }

    /// The actor answered an interrupt. It announces `interrupted` to every participant
    /// (this one too) on the presence channel itself; with no reply running nothing
    /// happened and nothing is sent.
    async fn interrupted(
        &mut self,
        live: &mut Live,
        answered: Result<Result<Option<String>, ActorError>, Elapsed>,
    ) -> Option<End> {
        match answered {
            Ok(Ok(_)) => None,
            Ok(Err(ActorError::Busy)) => self.error(live, &FrameError::BUSY).await,
            Ok(Err(_)) | Err(_) => Some(End::Close(close_code::AWAY, "conversation unavailable")),
        }
    }

    async fn error(&mut self, live: &mut Live, e: &FrameError) -> Option<End> {
        let sent = send(&mut live.socket, Message::text(protocol::error(e))).await;
        (!sent).then_some(End::Gone)
    }

    /// Passes one presence frame on, unless it is this participant's own typing.
    async fn forward(&self, live: &mut Live, frame: &PresenceFrame) -> bool {
        if frame.from.as_deref() == Some(&*self.me) {
            return true;
        }
        send(&mut live.socket, Message::text(&*frame.json)).await
    }

    /// Fell behind the presence channel: frames were lost, so learn the current state again.
    async fn rejoin(&mut self, live: &mut Live) -> bool {
        let Ok(Ok(fresh)) = timeout(ASK_TIMEOUT, self.conv.join()).await else {
            // The actor is busy or gone; carry on with what we have.
            self.presence = self.presence.resubscribe();
            return true;
        };
        self.presence = fresh.live;
        let mut frames = vec![PresenceFrame::bot(fresh.bot)];
        frames.extend(
            fresh
                .typing
                .iter()
                .filter(|who| **who != self.me)
                .map(|who| PresenceFrame::typing(who, true)),
        );
        for f in &frames {
            if !send(&mut live.socket, Message::text(&*f.json)).await {
                return false;
            }
        }
        true
    }

    /// Shutdown: the actor interrupts its reply and idles the bot after the signal; pass
    /// those last frames on (briefly), then say goodbye.
    async fn farewell(&mut self, live: &mut Live, conv_done: &CancellationToken) -> End {
        let _ = timeout(FAREWELL_WAIT, conv_done.cancelled()).await;
        self.drain_presence(live).await;
        End::Close(close_code::AWAY, "server shutting down")
    }

    async fn drain_presence(&mut self, live: &mut Live) {
        loop {
            match self.presence.try_recv() {
                Ok(frame) => {
                    if !self.forward(live, &frame).await {
                        return;
                    }
                }
                Err(TryRecvError::Lagged(_)) => continue,
                Err(TryRecvError::Empty | TryRecvError::Closed) => return,
            }
        }
    }
}

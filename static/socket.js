// The conversation's WebSocket: typing (ours and others'), bot state and interrupts. It
// stays open in background tabs (WebSockets do not count against HTTP/1.1's 6 connections
// per host), so a hidden tab still knows when a new reply starts.

import { backoff } from './feed.js';

const BOT_STATES = ['idle', 'thinking', 'streaming'];
const PEER_TYPING_MS = 6000;

export class Socket {
  /**
   * @param {{id: string, onChange: () => void}} opts
   */
  constructor(opts) {
    this.opts = opts;
    this.url = `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/api/conversations/${encodeURIComponent(opts.id)}/ws`;
    this.ws = null;
    this.open = false;
    this.retry = 0;
    this.timer = 0;
    this.participantId = null;
    this.bot = 'idle';
    this.typers = new Map(); // other participant -> expiry timer
    this.typingActive = false;
    this.typingSentAt = 0;
    this.typingIdleTimer = 0;
    this.closed = false;
    this.connect();
  }

  connect() {
    clearTimeout(this.timer);
    this.timer = 0;
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (err) {
      this.schedule();
      return;
    }
    this.ws = ws;
    ws.addEventListener('open', () => {
      this.open = true;
      this.retry = 0;
      // The server forgot our typing when the old socket closed; say it again.
      if (this.typingActive) this.setTyping(true);
      this.opts.onChange();
    });
    ws.addEventListener('message', (e) => {
      try {
        this.onMessage(JSON.parse(e.data));
      } catch (err) {
        console.warn('chatwire: bad WebSocket frame', err);
      }
    });
    ws.addEventListener('close', () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.open = false;
      // Whatever the socket told us is stale now.
      this.bot = 'idle';
      for (const t of this.typers.values()) clearTimeout(t);
      this.typers.clear();
      if (!this.closed) this.schedule();
      this.opts.onChange();
    });
  }

  schedule() {
    this.timer = setTimeout(() => this.connect(), backoff(this.retry++, 500, 10000));
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    clearTimeout(this.typingIdleTimer);
    for (const t of this.typers.values()) clearTimeout(t);
    this.typers.clear();
    if (this.ws) this.ws.close();
    this.ws = null;
  }

  send(msg) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  onMessage(msg) {
    switch (msg.type) {
      case 'hello':
        this.participantId = msg.participant_id;
        break;
      case 'typing':
        this.onPeerTyping(msg.participant_id, msg.active);
        return;
      case 'bot':
        this.bot = BOT_STATES.includes(msg.state) ? msg.state : 'idle';
        break;
      case 'error':
        console.warn('chatwire: server rejected a frame:', msg.code, msg.message);
        return;
      default:
        return; // `interrupted`: reply.interrupted over SSE carries the text we keep
    }
    this.opts.onChange();
  }

  onPeerTyping(pid, active) {
    if (!pid || pid === this.participantId) return;
    clearTimeout(this.typers.get(pid));
    this.typers.delete(pid);
    // Safety net in case the "stopped" frame never reaches us.
    if (active) this.typers.set(pid, setTimeout(() => this.onPeerTyping(pid, false), PEER_TYPING_MS));
    this.opts.onChange();
  }

  setTyping(active) {
    this.typingActive = active;
    if (active) this.typingSentAt = Date.now();
    this.send({ type: 'typing', active });
  }

  stopTyping() {
    clearTimeout(this.typingIdleTimer);
    if (this.typingActive) this.setTyping(false);
  }

  /** The composer changed: refresh "typing" well within the server's 5 s expiry. */
  typed(hasText) {
    if (!hasText) {
      this.stopTyping();
      return;
    }
    if (!this.typingActive || Date.now() - this.typingSentAt > 2000) this.setTyping(true);
    clearTimeout(this.typingIdleTimer);
    this.typingIdleTimer = setTimeout(() => this.stopTyping(), 3000);
  }
}

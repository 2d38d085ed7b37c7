// A conversation's event feed for one tab, built so that any number of tabs work over
// HTTP/1.1 (at most 6 connections per host, and an open EventSource holds one):
//
// - Of the tabs showing one conversation, one holds its EventSource: the holder of the Web
//   Lock `chatwire-sse:{id}`. It relays every event on BroadcastChannel `chatwire:{id}`; the
//   others wait in the lock's queue and apply the relayed events. When the holder goes, the
//   next tab takes over from its own Last-Event-ID.
// - A tab hidden for HIDDEN_GRACE_MS closes its EventSource (or leaves the queue); when it
//   comes back it resumes by Last-Event-ID, or — as a listener that fell behind — takes a
//   snapshot. The WebSocket (not counted against the 6) keeps bot state alive meanwhile.
//
// Events reach `onEvent(type, id, data)` in order; the caller drops ids it has applied, and
// calls `behind()` when it sees a gap, so everything arrives exactly once. Without Web
// Locks (plain HTTP on a non-local address is not a secure context) each tab has its own.

const HIDDEN_GRACE_MS = 2000;
const TYPES = ['user.message', 'reply.started', 'reply.delta', 'reply.completed', 'reply.interrupted', 'reply.failed', 'sync'];

/** A retry delay: exponential, capped, with full jitter so many tabs do not knock at once. */
export function backoff(attempt, baseMs = 500, capMs = 15000) {
  const top = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 8));
  return top / 2 + Math.random() * (top / 2);
}

export class Feed {
  /**
   * @param {{id: string, lastEventId: () => number, onEvent: (type: string, id: number, data: object) => void,
   *   onState: () => void, onSnapshot: (snap: object) => void}} opts
   */
  constructor(opts) {
    this.opts = opts;
    this.api = `/api/conversations/${encodeURIComponent(opts.id)}`;
    this.es = null;
    this.open = false;
    this.everOpen = false;
    this.retry = 0;
    this.timer = 0;
    this.leader = false; // holds the EventSource for this conversation
    this.relayed = false; // a leader elsewhere is feeding us
    this.release = null; // ends our hold of the lock
    this.abort = null; // leaves the lock's queue
    this.hiddenTimer = 0;
    this.syncTimer = 0;
    this.syncRetry = 0;
    this.syncing = false;
    this.stale = false; // a listener that knows it missed events, until a snapshot lands
    this.held = [];
    this.suspended = false;
    this.closed = false;
    this.locks = navigator.locks && typeof BroadcastChannel === 'function' ? navigator.locks : null;
    if (this.locks) {
      this.channel = new BroadcastChannel(`chatwire:${opts.id}`);
      this.channel.onmessage = (e) => this.onRelay(e.data);
    }
    this.onVisibility = () => this.visibility();
    document.addEventListener('visibilitychange', this.onVisibility);
    if (document.visibilityState === 'hidden') this.suspended = true;
    else this.start();
  }

  /**
   * "live" while events can reach this tab (its own stream, or a live leader's relay) and
   * it shows what it missed: a listener that is behind is not live until its snapshot lands.
   */
  get live() {
    return this.leader ? this.open : this.relayed && !this.syncing && !this.stale;
  }

  get retrying() {
    return this.timer !== 0 || (this.es !== null && this.es.readyState === EventSource.CONNECTING);
  }

  start() {
    this.suspended = false;
    if (!this.locks) {
      this.connect();
      return;
    }
    // Ask whoever holds the stream where it is, so a tab back from the background knows
    // at once whether it missed something.
    this.channel.postMessage({ kind: 'where' });
    const ctl = new AbortController();
    this.abort = ctl;
    this.locks
      .request(`chatwire-sse:${this.opts.id}`, { signal: ctl.signal }, () => new Promise((resolve) => {
        this.abort = null;
        this.release = resolve;
        this.leader = true;
        this.relayed = false;
        this.connect();
      }))
      .catch(() => {}); // aborted: we left the queue
  }

  stop() {
    clearTimeout(this.timer);
    this.timer = 0;
    if (this.es) this.es.close();
    this.es = null;
    this.open = false;
    if (this.abort) this.abort.abort();
    this.abort = null;
    if (this.release) {
      this.channel.postMessage({ kind: 'gone' });
      this.release();
    }
    this.release = null;
    this.leader = false;
    this.relayed = false;
    this.stale = false;
    clearTimeout(this.syncTimer);
    this.opts.onState();
  }

  close() {
    this.closed = true;
    document.removeEventListener('visibilitychange', this.onVisibility);
    clearTimeout(this.hiddenTimer);
    this.stop();
    if (this.channel) this.channel.close();
  }

  visibility() {
    clearTimeout(this.hiddenTimer);
    if (document.visibilityState === 'hidden') {
      this.hiddenTimer = setTimeout(() => {
        this.stop();
        this.suspended = true;
        this.opts.onState();
      }, HIDDEN_GRACE_MS);
    } else if (this.suspended && !this.closed) {
      this.start();
      this.opts.onState();
    }
  }

  connect() {
    clearTimeout(this.timer);
    this.timer = 0;
    if (this.es) this.es.close();
    const es = new EventSource(`${this.api}/events?last_event_id=${this.opts.lastEventId()}`);
    this.es = es;
    for (const type of TYPES) {
      es.addEventListener(type, (e) => this.onSse(type, e));
    }
    es.addEventListener('open', () => {
      this.open = this.everOpen = true;
      this.retry = 0;
      this.announce();
      this.opts.onState();
    });
    es.addEventListener('error', () => {
      if (this.es !== es) return;
      this.open = false;
      // CONNECTING: the browser retries by itself; CLOSED (a non-200): we retry, jittered.
      if (es.readyState === EventSource.CLOSED && !this.closed) {
        this.timer = setTimeout(() => this.connect(), backoff(this.retry++, 1000));
      }
      this.announce();
      this.opts.onState();
    });
  }

  onSse(type, e) {
    let data;
    try {
      data = JSON.parse(e.data);
    } catch (err) {
      console.warn('chatwire: bad SSE data', type, err);
      return;
    }
    const id = e.lastEventId === '' ? null : Number(e.lastEventId);
    if (this.channel) this.channel.postMessage({ kind: 'event', type, id, data });
    this.opts.onEvent(type, id, data);
  }

  announce() {
    if (this.channel && this.leader) {
      this.channel.postMessage({ kind: 'state', open: this.open, at: this.opts.lastEventId() });
    }
  }

  onRelay(msg) {
    if (this.leader) {
      if (msg.kind === 'where') this.announce();
      return;
    }
    if (this.suspended || this.closed) return;
    switch (msg.kind) {
      case 'event':
        this.relayed = true;
        // While a snapshot is on its way, keep events; those after it apply once it lands.
        if (this.syncing) this.held.push(msg);
        else this.opts.onEvent(msg.type, msg.id, msg.data);
        break;
      case 'state':
        this.relayed = msg.open;
        if (msg.at > this.opts.lastEventId()) this.behind();
        this.opts.onState();
        break;
      case 'gone':
        this.relayed = false;
        this.opts.onState();
        break;
    }
  }

  /** We missed events that the leader's stream already passed: take a snapshot. */
  async behind() {
    if (this.leader) return; // our own stream resumes exactly; a gap there means a sync follows
    if (this.syncing) return;
    clearTimeout(this.syncTimer);
    this.syncing = true;
    this.stale = true;
    this.held = [];
    this.opts.onState();
    let again = true; // a network error, 429 or 5xx: worth another try
    try {
      const res = await fetch(this.api, { headers: { Accept: 'application/json' }, credentials: 'same-origin' });
      if (res.ok && !this.closed) {
        this.opts.onSnapshot(await res.json());
        this.stale = false;
        this.syncRetry = 0;
      } else {
        again = res.status === 429 || res.status >= 500;
      }
    } catch (err) {
      console.warn('chatwire: snapshot failed', err);
    } finally {
      this.syncing = false;
      const held = this.held;
      this.held = [];
      for (const msg of held) this.opts.onEvent(msg.type, msg.id, msg.data);
      // Still behind (the snapshot failed for now): try again, jittered, while we listen.
      if (again && this.stale && !this.syncing && !this.leader && !this.suspended && !this.closed) {
        this.syncTimer = setTimeout(() => this.behind(), backoff(this.syncRetry++));
      }
      this.opts.onState();
    }
  }
}

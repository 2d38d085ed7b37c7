// chatwire chat page: wires the message list, the event feed (SSE, shared between tabs),
// the WebSocket (typing, bot state, interrupt), the side panel and the composer. `/` is a
// new, empty chat: the conversation is created by the first send. No framework, no build.

import { Feed } from './feed.js';
import { MessageList } from './messages.js';
import { Panel } from './panel.js';
import { Socket } from './socket.js';

const $ = (id) => document.getElementById(id);
const root = $('chat');
const els = {
  messages: $('messages'),
  emptyHint: $('empty-hint'),
  form: $('composer-form'),
  composer: $('composer'),
  send: $('send'),
  stop: $('stop'),
  typing: $('typing-indicator'),
  error: $('error'),
  botState: $('bot-state'),
  connection: $('connection'),
  picker: $('provider-picker'),
  badge: $('provider-badge'),
  newChat: $('new-chat'),
  missed: $('missed-hint'),
};
const BOT_LABELS = { idle: 'idle', thinking: 'thinking…', streaming: 'streaming' };
const NETWORK_ERROR = 'Could not reach the server. Check the connection and try again.';
const TITLE = document.title;

let conv = null; // {id, lastEventId, feed, socket}
let sending = false;

const list = new MessageList(els.messages, $('message-template'), {
  edit: (id, text) => editMessage(id, text),
  regenerate: () => regenerate(),
  changed: () => render(),
});
const panel = new Panel({
  open: (id) => switchTo(id, true),
  deleted: (id) => {
    if (conv && conv.id === id) newChat(true);
  },
  current: () => (conv ? conv.id : ''),
});

const apiOf = (id) => `/api/conversations/${encodeURIComponent(id)}`;

// ------------------------------------------------------------------ events

const handlers = {
  'user.message': (d) => {
    list.add({ id: d.message_id, role: 'user', text: d.text, status: 'complete' });
    panel.refresh();
  },
  'reply.started': (d) => {
    const m = { id: d.reply_id, role: 'assistant', text: '', status: 'streaming' };
    if (d.replaces) list.replace(d.replaces, m);
    else list.add(m);
  },
  'reply.delta': (d) => list.delta(d.reply_id, d.text),
  'reply.completed': (d) => list.finish(d.reply_id, d.text, 'complete'),
  'reply.interrupted': (d) => list.finish(d.reply_id, d.text, 'interrupted'),
  'reply.failed': (d) => list.finish(d.reply_id, d.text, 'failed', d.error),
};

/** One event, in order and once: ids already applied are dropped; a gap asks for a snapshot. */
function onEvent(c, type, id, data) {
  if (conv !== c) return;
  if (type === 'sync') {
    applySnapshot(c, data);
    return;
  }
  if (id !== null && Number.isFinite(id)) {
    if (id <= c.lastEventId) return;
    if (id > c.lastEventId + 1 && !c.feed.leader) {
      c.feed.behind();
      return;
    }
    c.lastEventId = id;
  }
  const h = handlers[type];
  if (h) h(data);
}

/**
 * A snapshot: the `sync` event of our own stream (always the truth), or one this tab fetched
 * (`fetched`) because it fell behind. A fetched one older than what the tab already applied
 * (it became the leader meanwhile and its stream resumed past it) would undo those events.
 */
function applySnapshot(c, snap, fetched = false) {
  if (conv !== c) return;
  const at = Number(snap.last_event_id);
  if (fetched && Number.isFinite(at) && at < c.lastEventId) return;
  list.replaceAll(snap.messages || []);
  if (Number.isFinite(at)) c.lastEventId = at;
}

// ------------------------------------------------------------ conversation

function attach(id, lastEventId) {
  const c = { id, lastEventId, feed: null, socket: null };
  conv = c;
  c.socket = new Socket({ id, onChange: () => render() });
  c.feed = new Feed({
    id,
    lastEventId: () => c.lastEventId,
    onEvent: (type, eid, data) => onEvent(c, type, eid, data),
    onState: () => render(),
    onSnapshot: (snap) => applySnapshot(c, snap, true),
  });
  root.dataset.conversationId = id;
  panel.markCurrent(id);
}

function detach() {
  if (!conv) return;
  conv.feed.close();
  conv.socket.close();
  conv = null;
  root.dataset.conversationId = '';
}

function showProvider(name) {
  const opt = [...els.picker.options].find((o) => o.value === name);
  if (!opt) return;
  els.picker.value = name;
  els.badge.dataset.kind = opt.dataset.kind;
  els.badge.textContent = opt.dataset.label;
  els.badge.title = `Provider: ${name}`;
}

/** Opens another conversation in place: the page, its panel and the composer stay. */
async function switchTo(id, push) {
  if (conv && conv.id === id) return;
  setError();
  let snap;
  try {
    const res = await fetch(apiOf(id), { headers: { Accept: 'application/json' }, credentials: 'same-origin' });
    if (!res.ok) {
      setError(await errorMessage(res));
      return;
    }
    snap = await res.json();
  } catch (err) {
    setError(NETWORK_ERROR);
    return;
  }
  detach();
  list.replaceAll(snap.messages || []);
  showProvider(snap.provider);
  attach(id, Number(snap.last_event_id) || 0);
  if (push) history.pushState({ id }, '', `/c/${encodeURIComponent(id)}`);
  render();
}

function newChat(push) {
  detach();
  list.replaceAll([]);
  if (push) history.pushState({ id: null }, '', '/');
  panel.markCurrent('');
  render();
  els.composer.focus();
}

// ------------------------------------------------------------------ render

function botState() {
  if (!conv) return 'idle';
  if (conv.socket.bot !== 'idle') return conv.socket.bot;
  // The WebSocket may be down or lag behind SSE: the message list is the fallback truth.
  const busy = list.streaming();
  if (!busy) return 'idle';
  return busy.text ? 'streaming' : 'thinking';
}

function connectionState() {
  if (!conv) return ['live', 'ready'];
  const { feed, socket } = conv;
  if (feed.suspended) return ['paused', 'paused (background)'];
  if (feed.live) return ['live', 'live'];
  const unreachable = !socket.open && socket.retry >= 3;
  if (navigator.onLine !== false && !unreachable && (socket.open || feed.retrying || !feed.leader)) {
    return ['reconnecting', feed.everOpen ? 'reconnecting…' : 'connecting…'];
  }
  return ['offline', navigator.onLine === false ? 'offline' : 'offline — retrying…'];
}

function render() {
  const s = botState();
  if (els.botState.dataset.state !== s) {
    els.botState.dataset.state = s;
    els.botState.textContent = BOT_LABELS[s];
  }
  els.stop.hidden = s === 'idle';
  const [cs, label] = connectionState();
  els.connection.dataset.state = cs;
  // How this tab gets its events: its own EventSource, a leader tab's relay, or none.
  els.connection.dataset.stream = !conv || conv.feed.suspended ? 'none' : conv.feed.leader ? 'own' : 'shared';
  els.connection.textContent = label;
  // In the background, without its stream, the tab still hears of a new reply.
  if (conv && conv.feed.suspended && s !== 'idle') els.missed.hidden = false;
  if (document.visibilityState === 'visible') els.missed.hidden = true;
  document.title = els.missed.hidden ? TITLE : `• ${TITLE}`;
  els.emptyHint.hidden = !list.isEmpty();
  const typers = conv ? conv.socket.typers.size : 0;
  els.typing.textContent = typers > 1 ? `${typers} people are typing…` : 'Someone is typing…';
  els.typing.hidden = typers === 0;
}

function setError(message) {
  els.error.textContent = message || '';
  els.error.hidden = !message;
}

// ------------------------------------------------------------- HTTP calls

function request(method, url, body, extraHeaders) {
  return fetch(url, {
    method,
    headers: { 'Content-Type': 'application/json', Accept: 'application/json', ...extraHeaders },
    body: JSON.stringify(body ?? {}),
    credentials: 'same-origin',
  });
}

async function errorMessage(res) {
  try {
    const body = await res.json();
    if (body && body.error && body.error.message) return body.error.message;
  } catch (err) {
    // Not JSON: fall through to the status line.
  }
  return `Request failed (${res.status} ${res.statusText || 'error'})`;
}

/** Runs one call; shows its error; true when it succeeded. */
async function call(method, url, body, extraHeaders) {
  setError();
  try {
    const res = await request(method, url, body, extraHeaders);
    if (!res.ok) {
      setError(await errorMessage(res));
      return null;
    }
    return res.status === 204 ? {} : await res.json();
  } catch (err) {
    setError(NETWORK_ERROR);
    return null;
  }
}

async function create() {
  const made = await call('POST', '/api/conversations', { provider: els.picker.value });
  if (!made) return false;
  history.pushState({ id: made.id }, '', `/c/${encodeURIComponent(made.id)}`);
  showProvider(made.provider);
  attach(made.id, 0);
  panel.refresh();
  return true;
}

/**
 * The `Idempotency-Key` of the text being sent: a new random key per send, kept while a
 * send of that same text has not succeeded, so pressing Send again after an error (a
 * timeout, a 503) is a retry the server answers once, never a second copy.
 */
let unsent = null;

function sendKey(text) {
  if (!unsent || unsent.text !== text) unsent = { text, key: randomKey() };
  return unsent.key;
}

function randomKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  // Not a secure context (plain HTTP, not localhost): 128 random bits as hex.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

async function sendMessage() {
  const text = els.composer.value;
  if (!text.trim() || sending) return;
  sending = true;
  els.send.disabled = true;
  if (conv) conv.socket.stopTyping();
  try {
    if (!conv && !(await create())) return;
    // The message itself arrives over SSE; only clear what was actually sent.
    const key = sendKey(text);
    if (await call('POST', `${apiOf(conv.id)}/messages`, { text }, { 'Idempotency-Key': key })) {
      unsent = null;
      if (els.composer.value === text) els.composer.value = '';
    }
  } finally {
    sending = false;
    els.send.disabled = false;
  }
}

async function interrupt() {
  if (!conv) return;
  if (conv.socket.send({ type: 'interrupt' })) return;
  await call('POST', `${apiOf(conv.id)}/interrupt`, {});
}

async function regenerate() {
  if (conv) await call('POST', `${apiOf(conv.id)}/regenerate`, {});
}

async function editMessage(id, text) {
  if (!conv) return false;
  return (await call('PUT', `${apiOf(conv.id)}/messages/${encodeURIComponent(id)}`, { text })) !== null;
}

// ------------------------------------------------------------------ wiring

els.form.addEventListener('submit', (e) => {
  e.preventDefault();
  sendMessage();
});
els.composer.addEventListener('keydown', (e) => {
  // isComposing: Enter that confirms an IME candidate must not send.
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    sendMessage();
  }
});
els.composer.addEventListener('input', () => conv && conv.socket.typed(els.composer.value.trim() !== ''));
els.composer.addEventListener('blur', () => conv && conv.socket.stopTyping());
els.stop.addEventListener('click', interrupt);
document.addEventListener('keydown', (e) => {
  // Only while the bot replies: Escape also closes menus and edits.
  if (e.key === 'Escape' && !e.isComposing && botState() !== 'idle') {
    e.preventDefault();
    interrupt();
  }
});
els.newChat.addEventListener('click', () => {
  panel.setOpen(false); // folds it where it folds; a no-op where there is room
  newChat(true);
});
window.addEventListener('popstate', () => {
  const m = /^\/c\/([^/]+)$/.exec(location.pathname);
  if (m) switchTo(decodeURIComponent(m[1]), false);
  else newChat(false);
});
window.addEventListener('online', render);
window.addEventListener('offline', render);
document.addEventListener('visibilitychange', () => {
  render();
  if (document.visibilityState === 'visible') panel.refresh();
});
window.addEventListener('pageshow', (e) => {
  // Back from the back/forward cache: the old connections are gone.
  if (e.persisted && conv) {
    const { id, lastEventId } = conv;
    detach();
    attach(id, lastEventId);
  }
});

list.adopt();
if (root.dataset.conversationId) attach(root.dataset.conversationId, Number(root.dataset.lastEventId) || 0);
els.messages.scrollTop = els.messages.scrollHeight;
panel.refresh();
render();
if (window.matchMedia('(pointer: fine)').matches) els.composer.focus();

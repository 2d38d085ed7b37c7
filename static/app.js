// chatwire chat page: SSE for the conversation's events, WebSocket for typing,
// bot state and interrupts, fetch for sending. No framework, no build step.
'use strict';

(() => {
  const root = document.getElementById('chat');
  if (!root) return;

  const $ = (id) => document.getElementById(id);
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
    newChat: $('new-chat'),
  };

  const api = `/api/conversations/${encodeURIComponent(root.dataset.conversationId)}`;
  const BOT_LABELS = { idle: 'idle', thinking: 'thinking…', streaming: 'streaming' };
  const NOTES = { interrupted: 'stopped', failed: 'failed' };
  const NEAR_BOTTOM_PX = 80;
  const WS_FAILURES_OFFLINE = 3;

  const state = {
    lastEventId: Number(root.dataset.lastEventId) || 0,
    es: null, sseOpen: false, sseEverOpen: false, sseRetry: 0, sseTimer: 0,
    ws: null, wsOpen: false, wsRetry: 0, wsTimer: 0,
    participantId: null,
    wsBot: 'idle',
    typers: new Map(), // other participant id -> local expiry timer
    typingActive: false, typingSentAt: 0, typingIdleTimer: 0,
    pending: new Map(), // reply id -> delta text not yet painted
    flushScheduled: false,
    sending: false,
    leaving: false,
  };

  // ---------------------------------------------------------------- messages

  // Must produce the same markup as the {% for m in messages %} loop in chat.html.
  function buildMessage(m) {
    const el = document.createElement('div');
    el.className = 'msg';
    el.setAttribute('data-testid', 'message');
    el.dataset.role = m.role;
    el.dataset.status = '';
    el.dataset.messageId = m.id;
    const bubble = document.createElement('div');
    bubble.className = 'bubble';
    const text = document.createElement('div');
    text.className = 'text';
    text.textContent = m.text || '';
    bubble.append(text);
    const note = document.createElement('p');
    note.className = 'note';
    el.append(bubble, note);
    setStatus(el, m.status || 'complete');
    return el;
  }

  function setStatus(el, status, error) {
    el.dataset.status = status;
    if (status === 'streaming') el.setAttribute('aria-busy', 'true');
    else el.removeAttribute('aria-busy');
    const note = el.querySelector('.note');
    const label = NOTES[status];
    note.textContent = label ? (error ? `${label}: ${error}` : label) : '';
    note.hidden = !label;
  }

  function findMessage(id) {
    return els.messages.querySelector(`.msg[data-message-id="${CSS.escape(String(id))}"]`);
  }

  const textOf = (el) => el.querySelector('.text');

  // Ends a reply: the final text from the server always wins over painted deltas.
  function finishReply(id, text, status, error) {
    state.pending.delete(id);
    const el = findMessage(id) || appendMessage({ id, role: 'assistant', text: '', status });
    textOf(el).textContent = text || '';
    setStatus(el, status, error);
  }

  function appendMessage(m) {
    const el = buildMessage(m);
    els.messages.append(el);
    return el;
  }

  // ------------------------------------------------------------- rendering

  const isNearBottom = () =>
    els.messages.scrollHeight - els.messages.scrollTop - els.messages.clientHeight < NEAR_BOTTOM_PX;
  const scrollToBottom = () => { els.messages.scrollTop = els.messages.scrollHeight; };

  // Every DOM change goes through here so scrolling and derived UI stay in step.
  function update(mutate) {
    const stick = isNearBottom();
    mutate();
    if (stick) scrollToBottom();
    renderBotState();
    els.emptyHint.hidden = els.messages.querySelector('.msg') !== null;
  }

  function currentBotState() {
    if (state.wsBot !== 'idle') return state.wsBot;
    // The WebSocket may be down or lag behind SSE: the message list is the fallback truth.
    const busy = els.messages.querySelector('.msg[data-role="assistant"][data-status="streaming"]');
    if (!busy) return 'idle';
    return textOf(busy).hasChildNodes() ? 'streaming' : 'thinking';
  }

  function renderBotState() {
    const s = currentBotState();
    if (els.botState.dataset.state !== s) {
      els.botState.dataset.state = s;
      els.botState.textContent = BOT_LABELS[s];
    }
    els.stop.hidden = s === 'idle';
  }

  function renderConnection() {
    let s = 'offline';
    let label = 'offline';
    // CONNECTING: the browser retries by itself; a pending timer: we retry (after a non-200).
    const sseRetrying = state.sseTimer !== 0
      || (state.es && state.es.readyState === EventSource.CONNECTING);
    // Several failed WebSocket attempts in a row: the server is unreachable, say so.
    const unreachable = !state.wsOpen && state.wsRetry >= WS_FAILURES_OFFLINE;
    if (state.sseOpen) {
      s = label = 'live';
    } else if (navigator.onLine !== false && (state.wsOpen || sseRetrying) && !unreachable) {
      s = 'reconnecting';
      label = state.sseEverOpen ? 'reconnecting…' : 'connecting…';
    } else if (navigator.onLine !== false) {
      label = 'offline — retrying…';
    }
    els.connection.dataset.state = s;
    els.connection.textContent = label;
  }

  function renderTyping() {
    const n = state.typers.size;
    els.typing.textContent = n > 1 ? `${n} people are typing…` : 'Someone is typing…';
    els.typing.hidden = n === 0;
  }

  // An empty message hides the error area.
  function setError(message) {
    els.error.textContent = message || '';
    els.error.hidden = !message;
  }

  // Deltas can arrive thousands per second; paint them at most once per frame.
  function scheduleFlush() {
    if (state.flushScheduled) return;
    state.flushScheduled = true;
    // requestAnimationFrame pauses in background tabs; a timer still drains the queue.
    if (document.hidden) setTimeout(flushDeltas, 100);
    else requestAnimationFrame(flushDeltas);
  }

  function flushDeltas() {
    state.flushScheduled = false;
    if (state.pending.size === 0) return;
    update(() => {
      for (const [id, text] of state.pending) {
        const el = findMessage(id);
        if (el && el.dataset.status === 'streaming') textOf(el).append(text);
      }
      state.pending.clear();
    });
  }

  // ------------------------------------------------------------ SSE events

  const sseHandlers = {
    'user.message': (d) => update(() => {
      if (!findMessage(d.message_id)) {
        appendMessage({ id: d.message_id, role: 'user', text: d.text, status: 'complete' });
      }
    }),
    'reply.started': (d) => update(() => {
      if (!findMessage(d.reply_id)) {
        appendMessage({ id: d.reply_id, role: 'assistant', text: '', status: 'streaming' });
      }
    }),
    'reply.delta': (d) => {
      // Unknown reply: ignore; the server follows a gap with a sync.
      if (!d.text || !findMessage(d.reply_id)) return;
      state.pending.set(d.reply_id, (state.pending.get(d.reply_id) || '') + d.text);
      scheduleFlush();
    },
    'reply.completed': (d) => update(() => finishReply(d.reply_id, d.text, 'complete')),
    'reply.interrupted': (d) => update(() => finishReply(d.reply_id, d.text, 'interrupted')),
    'reply.failed': (d) => update(() => finishReply(d.reply_id, d.text, 'failed', d.error)),
    sync: (d) => {
      update(() => {
        state.pending.clear();
        const frag = document.createDocumentFragment();
        for (const m of d.messages || []) frag.append(buildMessage(m));
        els.messages.replaceChildren(frag);
      });
      if (Number.isFinite(Number(d.last_event_id))) state.lastEventId = Number(d.last_event_id);
    },
  };

  // Drops events we already applied, so a replay can never double a delta.
  function isFresh(e) {
    if (e.lastEventId === '') return true;
    const id = Number(e.lastEventId);
    if (!Number.isFinite(id)) return true;
    if (id <= state.lastEventId) return false;
    state.lastEventId = id;
    return true;
  }

  function onSseEvent(type, e) {
    if (type !== 'sync' && !isFresh(e)) return;
    let data;
    try {
      data = JSON.parse(e.data);
    } catch (err) {
      console.warn('chatwire: bad SSE data', type, err);
      return;
    }
    sseHandlers[type](data);
  }

  function connectSse() {
    clearTimeout(state.sseTimer);
    state.sseTimer = 0;
    if (state.es) state.es.close();
    const es = new EventSource(`${api}/events?last_event_id=${state.lastEventId}`);
    state.es = es;
    for (const type of Object.keys(sseHandlers)) {
      es.addEventListener(type, (e) => onSseEvent(type, e));
    }
    es.addEventListener('open', () => {
      state.sseOpen = state.sseEverOpen = true;
      state.sseRetry = 0;
      renderConnection();
    });
    es.addEventListener('error', () => {
      if (state.es !== es) return;
      state.sseOpen = false;
      // CONNECTING means the browser retries by itself; CLOSED means it gave up.
      if (es.readyState === EventSource.CLOSED && !state.leaving) {
        const delay = Math.min(15000, 1000 * 2 ** Math.min(state.sseRetry++, 4));
        state.sseTimer = setTimeout(connectSse, delay);
      }
      renderConnection();
    });
  }

  // ------------------------------------------------------------- WebSocket

  function wsSend(msg) {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return false;
    state.ws.send(JSON.stringify(msg));
    return true;
  }

  function onWsMessage(msg) {
    switch (msg.type) {
      case 'hello':
        state.participantId = msg.participant_id;
        break;
      case 'typing':
        onPeerTyping(msg.participant_id, msg.active);
        break;
      case 'bot':
        state.wsBot = BOT_LABELS[msg.state] ? msg.state : 'idle';
        renderBotState();
        break;
      case 'interrupted':
        break; // reply.interrupted over SSE carries the text we keep.
      case 'error':
        console.warn('chatwire: server rejected a frame:', msg.code, msg.message);
        break;
    }
  }

  function connectWs() {
    clearTimeout(state.wsTimer);
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let ws;
    try {
      ws = new WebSocket(`${proto}//${location.host}${api}/ws`);
    } catch (err) {
      scheduleWs();
      return;
    }
    state.ws = ws;
    ws.addEventListener('open', () => {
      state.wsOpen = true;
      state.wsRetry = 0;
      // The server forgot our typing when the old socket closed; say it again.
      if (state.typingActive) setTyping(true);
      renderConnection();
    });
    ws.addEventListener('message', (e) => {
      try {
        onWsMessage(JSON.parse(e.data));
      } catch (err) {
        console.warn('chatwire: bad WebSocket frame', err);
      }
    });
    ws.addEventListener('close', () => {
      if (state.ws !== ws) return;
      state.ws = null;
      state.wsOpen = false;
      // Whatever the socket told us is stale now.
      state.wsBot = 'idle';
      for (const t of state.typers.values()) clearTimeout(t);
      state.typers.clear();
      if (!state.leaving) scheduleWs();
      renderTyping();
      renderBotState();
      renderConnection();
    });
  }

  function scheduleWs() {
    const base = Math.min(10000, 500 * 2 ** Math.min(state.wsRetry++, 5));
    // Jitter spreads out many tabs reconnecting after a server restart.
    state.wsTimer = setTimeout(connectWs, base / 2 + Math.random() * (base / 2));
  }

  // ---------------------------------------------------------------- typing

  function onPeerTyping(pid, active) {
    if (!pid || pid === state.participantId) return;
    clearTimeout(state.typers.get(pid));
    state.typers.delete(pid);
    if (active) {
      // Safety net in case the "stopped" frame never reaches us.
      state.typers.set(pid, setTimeout(() => onPeerTyping(pid, false), 6000));
    }
    renderTyping();
  }

  function setTyping(active) {
    state.typingActive = active;
    if (active) state.typingSentAt = Date.now();
    wsSend({ type: 'typing', active });
  }

  function stopTyping() {
    clearTimeout(state.typingIdleTimer);
    if (state.typingActive) setTyping(false);
  }

  function onComposerInput() {
    if (!els.composer.value.trim()) {
      stopTyping();
      return;
    }
    // Refresh well within the server's 5 s expiry while typing continues.
    if (!state.typingActive || Date.now() - state.typingSentAt > 2000) setTyping(true);
    clearTimeout(state.typingIdleTimer);
    state.typingIdleTimer = setTimeout(stopTyping, 3000);
  }

  // ------------------------------------------------------------ HTTP calls

  function postJson(url, body) {
    return fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify(body),
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

  const NETWORK_ERROR = 'Could not reach the server. Check the connection and try again.';

  async function sendMessage() {
    const text = els.composer.value;
    if (!text.trim() || state.sending) return;
    state.sending = true;
    els.send.disabled = true;
    stopTyping();
    setError();
    try {
      const res = await postJson(`${api}/messages`, { text });
      if (!res.ok) {
        setError(await errorMessage(res));
        return;
      }
      // The message itself arrives over SSE; only clear what was actually sent.
      if (els.composer.value === text) els.composer.value = '';
    } catch (err) {
      setError(NETWORK_ERROR);
    } finally {
      state.sending = false;
      els.send.disabled = false;
    }
  }

  async function interrupt() {
    if (wsSend({ type: 'interrupt' })) return;
    try {
      const res = await postJson(`${api}/interrupt`, {});
      if (!res.ok) setError(await errorMessage(res));
    } catch (err) {
      setError(NETWORK_ERROR);
    }
  }

  async function newChat() {
    els.newChat.disabled = true;
    setError();
    try {
      const res = await postJson('/api/conversations', { provider: els.picker.value });
      if (!res.ok) {
        setError(await errorMessage(res));
        return;
      }
      const { id } = await res.json();
      location.assign(`/c/${encodeURIComponent(id)}`);
    } catch (err) {
      setError(NETWORK_ERROR);
    } finally {
      els.newChat.disabled = false;
    }
  }

  // ------------------------------------------------------------------ wiring

  function bindUi() {
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
    els.composer.addEventListener('input', onComposerInput);
    els.composer.addEventListener('blur', stopTyping);
    els.stop.addEventListener('click', interrupt);
    document.addEventListener('keydown', (e) => {
      // Only while the bot replies: Escape also closes pickers and menus.
      if (e.key === 'Escape' && !e.isComposing && currentBotState() !== 'idle') {
        e.preventDefault();
        interrupt();
      }
    });
    els.newChat.addEventListener('click', newChat);
    window.addEventListener('online', () => {
      if (!state.sseOpen) connectSse();
      if (!state.wsOpen) connectWs();
      renderConnection();
    });
    window.addEventListener('offline', renderConnection);
    // Don't let unload-time errors trigger reconnects or flash the indicator.
    window.addEventListener('pagehide', () => {
      state.leaving = true;
    });
    window.addEventListener('pageshow', (e) => {
      if (!e.persisted) return;
      state.leaving = false;
      connectSse();
      if (!state.wsOpen) connectWs();
    });
  }

  function init() {
    bindUi();
    update(scrollToBottom);
    connectSse();
    connectWs();
    renderConnection();
    if (window.matchMedia('(pointer: fine)').matches) els.composer.focus();
  }

  init();
})();

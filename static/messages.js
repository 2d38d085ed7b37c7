// The message list: a model of the conversation's messages and the one way they become
// markup (clones of <template id="message-template">, which the server renders from the
// same templates/message.html it uses for the history). User text is plain text; assistant
// text is Markdown. A streaming reply is re-rendered alone, at most once per frame.

import { copyText, renderMarkdown } from './markdown.js';

const NEAR_BOTTOM_PX = 80;

// Render timing, read by the browser tests (and handy in the console): bounded counters.
const stats = { renders: 0, renderMs: 0, maxRenderMs: 0 };
window.chatwireStats = stats;

const noteFor = (status, error) => {
  if (status === 'interrupted') return 'stopped';
  if (status === 'failed') return error ? `failed: ${error}` : 'failed';
  return '';
};

export class MessageList {
  /**
   * @param {HTMLElement} root the list element
   * @param {HTMLTemplateElement} template one blank message
   * @param {{edit: (id: string, text: string) => Promise<boolean>, regenerate: () => void,
   *   changed: () => void}} actions
   */
  constructor(root, template, actions) {
    this.root = root;
    this.template = template;
    this.actions = actions;
    this.model = new Map(); // id -> {id, role, text, status, error}
    this.dirty = new Set(); // streaming ids waiting for a frame
    this.frame = 0;
    root.addEventListener('click', (e) => this.onClick(e));
  }

  /** Takes over the server-rendered history: its plain text is the source. */
  adopt() {
    for (const el of this.root.querySelectorAll('[data-testid="message"]')) {
      const textEl = el.querySelector('.text');
      const m = { id: el.dataset.messageId, role: el.dataset.role, text: textEl.textContent, status: el.dataset.status, error: null };
      const note = el.querySelector('.note').textContent;
      if (m.status === 'failed' && note.startsWith('failed: ')) m.error = note.slice('failed: '.length);
      this.model.set(m.id, m);
      if (m.role === 'assistant') this.paintText(el, m);
    }
    this.refresh();
  }

  element(id) {
    return this.root.querySelector(`[data-testid="message"][data-message-id="${CSS.escape(String(id))}"]`);
  }

  has(id) {
    return this.model.has(id);
  }

  get(id) {
    return this.model.get(id);
  }

  build(m) {
    const el = this.template.content.firstElementChild.cloneNode(true);
    el.dataset.messageId = m.id;
    el.dataset.role = m.role;
    this.paintText(el, m);
    this.paintStatus(el, m);
    return el;
  }

  paintText(el, m) {
    const textEl = el.querySelector('.text');
    if (m.role !== 'assistant') {
      textEl.textContent = m.text;
      return;
    }
    const t0 = performance.now();
    renderMarkdown(textEl, m.text);
    const ms = performance.now() - t0;
    stats.renders += 1;
    stats.renderMs += ms;
    if (ms > stats.maxRenderMs) stats.maxRenderMs = ms;
  }

  paintStatus(el, m) {
    el.dataset.status = m.status;
    if (m.status === 'streaming') el.setAttribute('aria-busy', 'true');
    else el.removeAttribute('aria-busy');
    const note = el.querySelector('.note');
    note.textContent = noteFor(m.status, m.error);
    note.hidden = !note.textContent;
  }

  /** Keeps the view pinned to the bottom if it was there before `mutate`. */
  sticky(mutate) {
    const r = this.root;
    const stick = r.scrollHeight - r.scrollTop - r.clientHeight < NEAR_BOTTOM_PX;
    mutate();
    if (stick) r.scrollTop = r.scrollHeight;
  }

  /** Replaces everything (a `sync` snapshot, or another conversation). */
  replaceAll(messages) {
    this.dirty.clear();
    this.model.clear();
    const frag = document.createDocumentFragment();
    for (const raw of messages) {
      const m = { id: raw.id, role: raw.role, text: raw.text || '', status: raw.status || 'complete', error: raw.error || null };
      this.model.set(m.id, m);
      frag.append(this.build(m));
    }
    this.root.replaceChildren(frag);
    this.root.scrollTop = this.root.scrollHeight;
    this.refresh();
  }

  add(m) {
    if (this.model.has(m.id)) return;
    const msg = { error: null, ...m };
    this.model.set(m.id, msg);
    this.sticky(() => this.root.append(this.build(msg)));
    this.refresh();
  }

  /** The next piece of a streaming reply: painted on the next frame. */
  delta(id, text) {
    const m = this.model.get(id);
    if (!m || m.status !== 'streaming' || !text) return;
    m.text += text;
    this.dirty.add(id);
    if (this.frame) return;
    // requestAnimationFrame pauses in background tabs; a timer still drains the queue.
    const flush = () => this.flush();
    this.frame = document.hidden ? setTimeout(flush, 100) : requestAnimationFrame(flush);
  }

  flush() {
    this.frame = 0;
    this.sticky(() => {
      for (const id of this.dirty) {
        const el = this.element(id);
        if (el) this.paintText(el, this.model.get(id));
      }
    });
    this.dirty.clear();
    this.actions.changed();
  }

  /** Ends a reply: the server's final text wins over the painted deltas. */
  finish(id, text, status, error) {
    let m = this.model.get(id);
    if (!m) {
      this.add({ id, role: 'assistant', text: '', status: 'streaming' });
      m = this.model.get(id);
    }
    this.dirty.delete(id);
    Object.assign(m, { text: text || '', status, error: error || null });
    const el = this.element(id);
    this.sticky(() => {
      this.paintText(el, m);
      this.paintStatus(el, m);
    });
    this.refresh();
  }

  /** A regenerated reply takes the old one's place. */
  replace(oldId, m) {
    const old = this.element(oldId);
    this.model.delete(oldId);
    this.dirty.delete(oldId);
    const msg = { error: null, ...m };
    this.model.set(m.id, msg);
    if (old) old.replaceWith(this.build(msg));
    else this.root.append(this.build(msg));
    this.refresh();
  }

  streaming() {
    for (const m of this.model.values()) if (m.role === 'assistant' && m.status === 'streaming') return m;
    return null;
  }

  isEmpty() {
    return this.model.size === 0;
  }

  /** Which actions each message offers: regenerate only on the last assistant message. */
  refresh() {
    const all = [...this.root.querySelectorAll('[data-testid="message"]')];
    const lastAssistant = all.filter((el) => el.dataset.role === 'assistant').at(-1);
    const show = (btn, on) => {
      if (btn.hidden === on) btn.hidden = !on; // untouched unless it changes
    };
    for (const el of all) {
      show(el.querySelector('[data-testid="edit"]'), el.dataset.role === 'user');
      show(el.querySelector('[data-testid="regenerate"]'), el === lastAssistant && el.dataset.status !== 'streaming');
    }
    this.actions.changed();
  }

  onClick(e) {
    const btn = e.target.closest('button');
    if (!btn || !this.root.contains(btn)) return;
    const el = btn.closest('[data-testid="message"]');
    const m = el && this.model.get(el.dataset.messageId);
    if (!m) return;
    switch (btn.dataset.testid) {
      case 'copy':
        flashCopied(btn, copyText(m.text));
        break;
      case 'code-copy':
        flashCopied(btn, copyText(btn.parentElement.querySelector('pre').textContent));
        break;
      case 'regenerate':
        this.actions.regenerate(m.id);
        break;
      case 'edit':
        this.startEdit(el, m);
        break;
    }
  }

  /** Edits a user message in place: Enter (or Save) resends, Escape (or Cancel) keeps it. */
  startEdit(el, m) {
    if (el.querySelector('.edit-box')) return;
    const textEl = el.querySelector('.text');
    const box = document.createElement('div');
    box.className = 'edit-box';
    const area = document.createElement('textarea');
    area.value = m.text;
    area.dataset.testid = 'edit-text';
    area.setAttribute('aria-label', 'Edit your message');
    const save = button('Save', 'edit-save', 'btn btn-send');
    const cancel = button('Cancel', 'edit-cancel', 'btn btn-ghost');
    box.append(area, save, cancel);
    textEl.hidden = true;
    textEl.after(box);
    area.focus();
    const close = () => {
      box.remove();
      textEl.hidden = false;
      el.querySelector('[data-testid="edit"]').focus();
    };
    const submit = async () => {
      const text = area.value;
      if (!text.trim() || text === m.text) return close();
      save.disabled = true;
      if (await this.actions.edit(m.id, text)) close();
      else save.disabled = false;
    };
    save.addEventListener('click', submit);
    cancel.addEventListener('click', close);
    area.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        submit();
      } else if (e.key === 'Escape') {
        e.preventDefault();
        e.stopPropagation();
        close();
      }
    });
  }
}

function button(label, testid, className) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = className;
  b.textContent = label;
  b.dataset.testid = testid;
  return b;
}

function flashCopied(btn, done) {
  done.then(
    () => {
      btn.dataset.copied = 'true';
      setTimeout(() => delete btn.dataset.copied, 1500);
    },
    (err) => console.warn('chatwire: copy failed', err),
  );
}

// The side panel: this browser's conversations (GET /api/conversations, most recent
// first), each opened in place, renamed in place or deleted after a confirmation. Below
// 700 px it folds away behind the "Chats" toggle.

const NARROW = window.matchMedia('(max-width: 700px)');

export class Panel {
  /**
   * @param {{open: (id: string) => void, deleted: (id: string) => void, current: () => string}} actions
   */
  constructor(actions) {
    this.actions = actions;
    this.nav = document.getElementById('panel');
    this.list = document.getElementById('conversation-list');
    this.empty = document.getElementById('conversation-empty');
    this.toggle = document.getElementById('panel-toggle');
    this.layout = document.getElementById('layout');
    this.loading = null;
    this.again = false;
    this.toggle.addEventListener('click', () => this.setOpen(!this.isOpen()));
    this.list.addEventListener('click', (e) => this.onClick(e));
    this.nav.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && NARROW.matches && this.isOpen()) {
        e.stopPropagation();
        this.setOpen(false);
        this.toggle.focus();
      }
    });
    NARROW.addEventListener('change', () => this.setOpen(false));
    this.setOpen(false);
  }

  isOpen() {
    return !NARROW.matches || this.layout.dataset.panel === 'open';
  }

  setOpen(open) {
    this.layout.dataset.panel = open ? 'open' : 'closed';
    this.toggle.setAttribute('aria-expanded', String(this.isOpen()));
    // Folded away, its controls are out of the tab order too.
    this.nav.inert = NARROW.matches && !open;
    if (open && NARROW.matches) (this.list.querySelector('a') || this.nav.querySelector('button'))?.focus();
  }

  /** Reloads the list (coalescing calls made while one is in flight). */
  refresh() {
    if (this.loading) {
      this.again = true;
      return this.loading;
    }
    this.loading = this.load().finally(() => {
      this.loading = null;
      if (this.again) {
        this.again = false;
        this.refresh();
      }
    });
    return this.loading;
  }

  async load() {
    let body;
    try {
      const res = await fetch('/api/conversations?limit=100', { headers: { Accept: 'application/json' }, credentials: 'same-origin' });
      if (!res.ok) {
        this.render([]);
        return;
      }
      body = await res.json();
    } catch (err) {
      return; // offline: keep what we show
    }
    this.render(Array.isArray(body.conversations) ? body.conversations : []);
  }

  render(items) {
    const current = this.actions.current();
    const frag = document.createDocumentFragment();
    for (const c of items) {
      const li = document.createElement('li');
      li.className = 'conversation-item';
      li.dataset.testid = 'conversation-item';
      li.dataset.conversationId = c.id;
      const title = c.title || 'New conversation';
      const a = document.createElement('a');
      a.className = 'conversation-open';
      a.href = `/c/${encodeURIComponent(c.id)}`;
      a.textContent = title;
      if (c.id === current) a.setAttribute('aria-current', 'page');
      const rename = iconButton('Rename', `Rename “${title}”`, 'rename');
      const del = iconButton('Delete', `Delete “${title}”`, 'delete');
      li.append(a, rename, del);
      frag.append(li);
    }
    this.list.replaceChildren(frag);
    this.empty.hidden = items.length > 0;
  }

  markCurrent(id) {
    for (const a of this.list.querySelectorAll('a.conversation-open')) {
      if (a.closest('li').dataset.conversationId === id) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
  }

  onClick(e) {
    const li = e.target.closest('li[data-testid="conversation-item"]');
    if (!li) return;
    const id = li.dataset.conversationId;
    if (e.target.closest('a.conversation-open')) {
      if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return; // new tab etc.
      e.preventDefault();
      this.actions.open(id);
      if (NARROW.matches) this.setOpen(false);
      return;
    }
    const btn = e.target.closest('button');
    if (btn?.dataset.testid === 'rename') this.startRename(li, id);
    if (btn?.dataset.testid === 'delete') this.remove(li, id);
  }

  startRename(li, id) {
    const a = li.querySelector('a.conversation-open');
    const input = document.createElement('input');
    input.type = 'text';
    input.className = 'rename-input';
    input.dataset.testid = 'rename-input';
    input.value = a.textContent;
    input.maxLength = 200;
    input.setAttribute('aria-label', 'New title (Enter saves, Escape cancels)');
    a.hidden = true;
    a.after(input);
    input.focus();
    input.select();
    let done = false;
    const finish = async (save) => {
      if (done) return;
      done = true;
      const title = input.value.trim();
      if (save && title && title !== a.textContent) {
        const res = await patch(id, title);
        if (res) a.textContent = res.title;
      }
      input.remove();
      a.hidden = false;
      li.querySelector('[data-testid="rename"]').focus();
      this.refresh();
    };
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') {
        e.preventDefault();
        finish(true);
      } else if (e.key === 'Escape') {
        e.preventDefault();
        e.stopPropagation();
        finish(false);
      }
    });
    input.addEventListener('blur', () => finish(true));
  }

  async remove(li, id) {
    const title = li.querySelector('a.conversation-open').textContent;
    if (!window.confirm(`Delete “${title}”? This cannot be undone.`)) return;
    try {
      const res = await fetch(`/api/conversations/${encodeURIComponent(id)}`, { method: 'DELETE', credentials: 'same-origin' });
      if (!res.ok && res.status !== 404) return;
    } catch (err) {
      return;
    }
    li.remove();
    this.empty.hidden = this.list.children.length > 0;
    this.actions.deleted(id);
    this.refresh();
  }
}

function iconButton(text, label, testid) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = `act act-${testid}`;
  b.dataset.testid = testid;
  b.textContent = text;
  b.setAttribute('aria-label', label);
  return b;
}

async function patch(id, title) {
  try {
    const res = await fetch(`/api/conversations/${encodeURIComponent(id)}`, {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ title }),
      credentials: 'same-origin',
    });
    return res.ok ? await res.json() : null;
  } catch (err) {
    return null;
  }
}

// Markdown for assistant text: marked (CommonMark + GitHub tables, strikethrough, task
// lists) then DOMPurify, the same for history and for a reply while it streams. Model
// output is hostile input: raw HTML is shown as text (marked's html tokens are escaped)
// and DOMPurify drops anything left that could run or load; only http, https and mailto
// links stay live, images become links, and every link opens with noopener noreferrer.
// Both libraries are vendored in static/vendor/ (see its README for versions).

const { marked } = window;
const DOMPurify = window.DOMPurify;

const escapeHtml = (s) =>
  String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

const LIVE_URL = /^(?:https?:|mailto:)/i;

const parser = new marked.Marked({
  gfm: true,
  breaks: false,
  renderer: {
    // Raw HTML in the text (blocks and inline tags) is shown, not interpreted.
    html({ text }) {
      return escapeHtml(text);
    },
    // Nothing is loaded from a link in model output: an image is a link to it.
    image({ href, text }) {
      if (!LIVE_URL.test(href || '')) return escapeHtml(text);
      return `<a href="${escapeHtml(href)}">${escapeHtml(text || href)}</a>`;
    },
    // A task's box, named for screen readers (a bare checkbox has no label).
    checkbox({ checked }) {
      return `<input type="checkbox" disabled${checked ? ' checked' : ''} aria-label="${checked ? 'done' : 'not done'}"> `;
    },
  },
});

// Exactly what marked emits for Markdown; anything else is dropped.
const PURIFY = {
  ALLOWED_TAGS: ['p', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'strong', 'em', 'del', 's', 'code', 'pre',
    'ul', 'ol', 'li', 'input', 'blockquote', 'a', 'table', 'thead', 'tbody', 'tr', 'th', 'td', 'hr', 'br'],
  ALLOWED_ATTR: ['href', 'title', 'type', 'checked', 'disabled', 'aria-label', 'align', 'start'],
  ALLOW_DATA_ATTR: false,
  ALLOW_ARIA_ATTR: false,
};

DOMPurify.addHook('afterSanitizeAttributes', (node) => {
  if (node.tagName === 'INPUT' && node.getAttribute('type') !== 'checkbox') node.setAttribute('type', 'checkbox');
  if (node.tagName === 'A') {
    const href = node.getAttribute('href');
    if (!href || !LIVE_URL.test(href)) node.removeAttribute('href');
    node.setAttribute('rel', 'noopener noreferrer');
    node.setAttribute('target', '_blank');
  }
});

/** Markdown source → a sanitised DocumentFragment. */
export function toFragment(source) {
  // Trimmed: the newline after the last block would be a stray text node.
  const html = parser.parse(source || '', { async: false }).trim();
  return DOMPurify.sanitize(html, { ...PURIFY, RETURN_DOM_FRAGMENT: true });
}

/** Renders `source` into `el` (replacing what it held), with a copy button on each code block. */
export function renderMarkdown(el, source) {
  const frag = toFragment(source);
  for (const pre of frag.querySelectorAll('pre')) {
    const wrap = document.createElement('div');
    wrap.className = 'code';
    pre.replaceWith(wrap);
    const btn = document.createElement('button');
    btn.type = 'button';
    btn.className = 'code-copy';
    btn.dataset.testid = 'code-copy';
    btn.setAttribute('aria-label', 'Copy code');
    wrap.append(btn, pre);
    // Scrollable code must be reachable by keyboard.
    pre.tabIndex = 0;
  }
  el.replaceChildren(frag);
}

/** Copies text to the clipboard; falls back to a selection where the API is missing. */
export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const ta = document.createElement('textarea');
  ta.value = text;
  ta.setAttribute('readonly', '');
  ta.className = 'sr-only';
  document.body.append(ta);
  ta.select();
  document.execCommand('copy');
  ta.remove();
}

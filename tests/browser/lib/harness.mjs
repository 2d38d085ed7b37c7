// The scenario harness: each scenario gets its own chatwire server, its own headless
// Chromium (fresh profile) and one browser context (so its tabs share the cookie). On
// failure it saves a screenshot of every open tab into tests/browser/screenshots/ and
// prints the server's last log lines. Uncaught page errors fail the scenario.
//
// Waiting is always on a condition with a timeout (`page.waitForFunction`, polled), never
// a fixed sleep, except where the condition *is* time ("the text stays the same for 0.5 s").

import { test } from 'node:test';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

import { ChatServer } from './server.mjs';

export const CHROMIUM = process.env.CHATWIRE_CHROMIUM || '/usr/bin/chromium';
export const SCREENSHOTS = fileURLToPath(new URL('../screenshots/', import.meta.url));

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

/** Headless Chromium with a fresh profile (Playwright gives each launch its own user-data-dir). */
export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 30_000,
  });
}

// Installed in every page before the app's script runs. It watches the message list and
// records, per assistant message, each (text length, status) it passed through, and any
// moment where a `/count` reply was not exactly "1 2 … k" (a lost or doubled word).
function recorder() {
  const rec = { bad: [], history: {} };
  window.__cw = rec;
  const isCountPrefix = (t) => {
    const words = t.split(' ');
    for (let i = 0; i < words.length; i++) if (words[i] !== String(i + 1)) return false;
    return true;
  };
  const scan = () => {
    for (const el of document.querySelectorAll('[data-testid="message"][data-role="assistant"]')) {
      const id = el.dataset.messageId;
      const textEl = el.querySelector('.text');
      const text = textEl ? textEl.textContent : '';
      const status = el.dataset.status;
      const h = rec.history[id] || (rec.history[id] = []);
      const last = h[h.length - 1];
      if ((!last || last[0] !== text.length || last[1] !== status) && h.length < 20000) {
        h.push([text.length, status]);
      }
      if (/^1( |$)/.test(text) && !isCountPrefix(text) && rec.bad.length < 20) {
        rec.bad.push({ id, status, length: text.length, tail: text.slice(-60) });
      }
    }
  };
  new MutationObserver(scan).observe(document, {
    subtree: true,
    childList: true,
    characterData: true,
    attributes: true,
    attributeFilter: ['data-status'],
  });
}

const slug = (s) => s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 80);

/**
 * Declares one independent scenario.
 * @param {string} name
 * @param {{server?: object, timeout?: number, needs?: (server: ChatServer) => Promise<string|null>}} opts
 *   server options for ChatServer.start; `needs` names what the server lacks (or null)
 * @param {(env: {server: ChatServer, context: import('playwright-core').BrowserContext,
 *   page: import('playwright-core').Page, newPage: () => Promise<import('playwright-core').Page>,
 *   t: import('node:test').TestContext}) => Promise<void>} body
 */
export function scenario(name, opts, body) {
  test(name, { timeout: opts.timeout ?? 45_000 }, async (t) => {
    const server = await ChatServer.start(opts.server || {});
    // A scenario for an API another branch brings: skipped, loudly, while this server lacks it.
    const missing = opts.needs ? await opts.needs(server).catch((e) => `probe failed: ${e.message}`) : null;
    if (missing) {
      t.skip(`SKIPPED: the server lacks ${missing}`);
      await server.stop();
      return;
    }
    let browser = null;
    let context = null;
    const pageErrors = [];
    const consoleLines = [];
    let ok = false;
    try {
      browser = await launchBrowser();
      context = await browser.newContext({
        baseURL: server.base,
        viewport: { width: 1000, height: 760 },
        colorScheme: 'light',
      });
      context.setDefaultTimeout(10_000);
      await context.addInitScript(recorder);
      context.on('page', (p) => {
        p.on('pageerror', (err) => pageErrors.push(`${p.url()}: ${err.message}`));
        p.on('console', (msg) => {
          if ((msg.type() === 'error' || msg.type() === 'warning') && consoleLines.length < 50) {
            consoleLines.push(`console.${msg.type()}: ${msg.text()}`);
          }
        });
      });
      const page = await context.newPage();
      await body({ server, context, page, newPage: () => context.newPage(), t });
      assert_no_page_errors(pageErrors);
      ok = true;
    } finally {
      if (!ok) {
        await saveScreenshots(context, name, t);
        t.diagnostic('browser console (errors and warnings):');
        for (const line of consoleLines) t.diagnostic(`  ${line}`);
        t.diagnostic('server log (last lines):');
        for (const line of server.tail().split('\n')) t.diagnostic(`  ${line}`);
      }
      if (browser) await browser.close().catch(() => {});
      await server.stop();
    }
  });
}

function assert_no_page_errors(errors) {
  if (errors.length) throw new Error(`uncaught errors in the page:\n${errors.join('\n')}`);
}

async function saveScreenshots(context, name, t) {
  if (!context) return;
  mkdirSync(SCREENSHOTS, { recursive: true });
  const pages = context.pages();
  for (let i = 0; i < pages.length; i++) {
    const file = join(SCREENSHOTS, `${slug(name)}${pages.length > 1 ? `-tab${i + 1}` : ''}.png`);
    try {
      await pages[i].screenshot({ path: file, fullPage: true, timeout: 5000 });
      t.diagnostic(`screenshot: ${file}`);
    } catch (e) {
      t.diagnostic(`screenshot failed: ${e.message}`);
    }
  }
}

// ------------------------------------------------------------------ page helpers

export const sel = {
  composer: '[data-testid="composer"]',
  send: '[data-testid="send"]',
  stop: '[data-testid="stop"]',
  messages: '[data-testid="messages"]',
  message: '[data-testid="message"]',
  assistant: '[data-testid="message"][data-role="assistant"]',
  user: '[data-testid="message"][data-role="user"]',
  typing: '[data-testid="typing-indicator"]',
  botState: '[data-testid="bot-state"]',
  connection: '[data-testid="connection"]',
  picker: '[data-testid="provider-picker"]',
  newChat: '[data-testid="new-chat"]',
  error: '[data-testid="error"]',
};

/**
 * Opens a new conversation's page and waits until it is live; returns its id. `/` is an
 * empty chat that stores nothing until the first send (a server that still creates one at
 * `/` redirects); without a send yet, the conversation is created the way the page does it.
 */
export async function openNewChat(page) {
  await page.goto('/');
  if (!/\/c\/[^/]+$/.test(page.url())) {
    const id = await page.evaluate(async () => {
      const res = await fetch('/api/conversations', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: '{}',
      });
      return (await res.json()).id;
    });
    await page.goto(`/c/${encodeURIComponent(id)}`);
  }
  await waitConnection(page, 'live');
  return conversationId(page);
}

/** Opens a new conversation in `page` and a second tab on it; returns the second tab. */
export async function secondTab(page, newPage) {
  const id = await openNewChat(page);
  const other = await newPage();
  await other.goto(`/c/${encodeURIComponent(id)}`);
  await waitConnection(other, 'live');
  return other;
}

export function conversationId(page) {
  const m = /\/c\/([^/?#]+)/.exec(page.url());
  if (!m) throw new Error(`not on a conversation page: ${page.url()}`);
  return decodeURIComponent(m[1]);
}

export async function waitConnection(page, state, timeout = 10_000) {
  await page.waitForFunction(
    ([s, want]) => document.querySelector(s)?.dataset.state === want,
    [sel.connection, state],
    { timeout, polling: 50 },
  );
}

/** Types into the composer and presses Enter (the way a person sends). */
export async function send(page, text) {
  const composer = page.locator(sel.composer);
  await composer.click();
  await composer.fill(text);
  await composer.press('Enter');
}

/** Every message on the page, in order. */
export function messages(page) {
  return page.$$eval(sel.message, (els) =>
    els.map((el) => ({
      id: el.dataset.messageId,
      role: el.dataset.role,
      status: el.dataset.status,
      text: el.querySelector('.text')?.textContent ?? '',
    })),
  );
}

/**
 * Waits until the page has `count` assistant messages and the last one satisfies
 * `{status?, minLength?}`; returns that message.
 */
export async function waitAssistant(page, { count = 1, status, minLength = 0, timeout = 10_000 }) {
  await page.waitForFunction(
    ({ s, count, status, minLength }) => {
      const all = document.querySelectorAll(s);
      if (all.length < count) return false;
      const el = all[count - 1];
      const text = el.querySelector('.text')?.textContent ?? '';
      return (!status || el.dataset.status === status) && text.length >= minLength;
    },
    { s: sel.assistant, count, status, minLength },
    { timeout, polling: 20 },
  );
  const all = await messages(page);
  return all.filter((m) => m.role === 'assistant')[count - 1];
}

/** Waits until the text of assistant message `count` is longer than `length`; returns the new length. */
export async function waitLonger(page, count, length, timeout = 5000) {
  const handle = await page.waitForFunction(
    ({ s, count, length }) => {
      const el = document.querySelectorAll(s)[count - 1];
      const n = el ? (el.querySelector('.text')?.textContent ?? '').length : -1;
      return n > length ? n : false;
    },
    { s: sel.assistant, count, length },
    { timeout, polling: 20 },
  );
  return handle.jsonValue();
}

/**
 * Waits for the reply (assistant message `count`) to start streaming, then for it to grow
 * `times` more times; returns the first state seen and every length sampled.
 */
export async function growingReply(page, times, count = 1) {
  const first = await waitAssistant(page, { count, status: 'streaming', minLength: 1 });
  const lengths = [first.text.length];
  for (let i = 0; i < times; i++) lengths.push(await waitLonger(page, count, lengths.at(-1)));
  return { first, lengths };
}

/** What the recorder saw: per message the (length, status) steps, and count violations. */
export function recorded(page) {
  return page.evaluate(() => window.__cw);
}

/** The conversation as the server has it (the context's cookie authenticates). */
export async function serverConversation(context, id) {
  const res = await context.request.get(`/api/conversations/${encodeURIComponent(id)}`);
  if (!res.ok()) throw new Error(`GET conversation: ${res.status()} ${await res.text()}`);
  return res.json();
}

/** The (length, status) steps the recorder saw for message `id` while it streamed. */
export const streamingSteps = (rec, id) => (rec.history[id] || []).filter(([, s]) => s === 'streaming');

/** Message `messageId` as the server stored it in conversation `id`. */
export async function storedMessage(context, id, messageId) {
  const conv = await serverConversation(context, id);
  return conv.messages.find((m) => m.id === messageId);
}

/** "1 2 3 … n" */
export const countText = (n) => Array.from({ length: n }, (_, i) => String(i + 1)).join(' ');

/** How many words a (prefix of a) count text has. */
export const wordCount = (text) => (text ? text.split(' ').length : 0);

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** `needs` probe: the conversation list of issue 13 (GET /api/conversations; 405 without it). */
export async function needsConversationList(server) {
  const res = await fetch(server.url('/api/conversations'));
  return res.status === 405 || res.status === 404 ? 'GET /api/conversations (issue 13)' : null;
}

/** `needs` probe: issue 14's operations (regenerate answers 409 on a chat with no reply). */
export async function needsOperations(server) {
  const made = await fetch(server.url('/api/conversations'), {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}',
  });
  const { id, token } = await made.json();
  const res = await fetch(server.url(`/api/conversations/${id}/regenerate`), {
    method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` }, body: '{}',
  });
  return res.status === 409 ? null : `POST …/regenerate (issue 14's operations; got ${res.status})`;
}

// Issue 17: ten tabs of one browser on a plain-HTTP/1.1 server (where Chromium opens at most
// 6 connections per host and an open EventSource holds one). Tabs come to the front one at
// a time, as in a window: the one left behind is hidden (emulated: Playwright's headless
// pages all report "visible"). Every tab loads, sends and stops; a reply reaches every tab
// showing its conversation; tabs back from the background show what they missed, once.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';

import {
  countText,
  messages,
  openNewChat,
  recorded,
  scenario,
  sel,
  send,
  serverConversation,
  waitAssistant,
  waitConnection,
} from '../lib/harness.mjs';

const TABS = 10;

/** Emulates the tab going to the background (or coming back), as visibilitychange does. */
async function setVisible(tab, visible) {
  await tab.evaluate((v) => {
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (v ? 'visible' : 'hidden') });
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => !v });
    document.dispatchEvent(new Event('visibilitychange'));
  }, visible);
}

const streamOf = (tab) => tab.getAttribute(sel.connection, 'data-stream');

async function waitStream(tab, want, timeout = 10_000) {
  await tab.waitForFunction(
    ([s, w]) => w.includes(document.querySelector(s)?.dataset.stream),
    [sel.connection, want],
    { timeout, polling: 50 },
  );
}

/** Established TCP connections to the server's port (server side: one per browser connection). */
function connections(port) {
  const out = execFileSync('ss', ['-tnH', 'state', 'established', `( sport = :${port} )`], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.trim()).length;
}

/** How many replies conversation `id` has on the server (what a caught-up tab shows). */
async function replies(context, id) {
  return (await serverConversation(context, id)).messages.filter((m) => m.role === 'assistant').length;
}

/**
 * Sends a long count in `tab`, stops it once it streams, and checks it ended stopped. The
 * new reply's place comes from the server: a tab back from the background must also show
 * the replies it missed for it to be found there.
 */
async function sendAndStop(tab, context, id) {
  const before = await replies(context, id);
  await send(tab, '/count 5000');
  await waitAssistant(tab, { count: before + 1, status: 'streaming', minLength: 20, timeout: 20_000 });
  await tab.locator(sel.stop).click();
  const stopped = await waitAssistant(tab, { count: before + 1, status: 'interrupted', timeout: 20_000 });
  assert.equal(stopped.text, countText(stopped.text.split(' ').length));
}

function assertOnce(list, what) {
  const ids = list.map((m) => m.id);
  assert.equal(new Set(ids).size, ids.length, `${what}: no message twice`);
}

scenario('ten tabs over HTTP/1.1: all load, send and stop; replies reach every tab; background tabs catch up once', { server: { delayMs: 4 }, timeout: 180_000 }, async ({ page, context, server, newPage, t }) => {
  // Tabs 0, 1 and 2 show conversation A; every other tab has its own.
  const tabs = [page];
  const convA = await openNewChat(page);
  const convs = [convA];
  for (let i = 1; i < TABS; i++) {
    await setVisible(tabs[i - 1], false); // the new tab comes to the front
    const tab = await newPage();
    tabs.push(tab);
    if (i <= 2) {
      await tab.goto(`/c/${encodeURIComponent(convA)}`, { timeout: 15_000 });
      await waitConnection(tab, 'live', 15_000);
      convs.push(convA);
    } else {
      convs.push(await openNewChat(tab));
    }
  }
  // Every tab loaded and is connected: the front one live, the rest paused in the background.
  await waitConnection(tabs[TABS - 1], 'live');
  for (let i = 0; i < TABS - 1; i++) await waitConnection(tabs[i], 'paused', 10_000);
  const quiet = connections(server.port);
  t.diagnostic(`ten tabs open, one in front: ${quiet} TCP connections to the server`);

  // Each tab, brought to the front in turn, can send and stop.
  for (let i = 0; i < TABS; i++) {
    if (i > 0) await setVisible(tabs[i - 1], false);
    await setVisible(tabs[i], true);
    await waitConnection(tabs[i], 'live', 15_000);
    await sendAndStop(tabs[i], context, convs[i]);
  }
  await setVisible(tabs[TABS - 1], false);

  // Tabs 0 and 1 (conversation A) side by side in front, tab 2 (also A) in the background.
  await setVisible(tabs[0], true);
  await setVisible(tabs[1], true);
  await waitConnection(tabs[0], 'live', 15_000);
  await waitConnection(tabs[1], 'live', 15_000);
  await waitConnection(tabs[2], 'paused', 10_000);
  const streams = [await streamOf(tabs[0]), await streamOf(tabs[1])].sort();
  assert.deepEqual(streams, ['own', 'shared'], 'two tabs of one conversation share one EventSource');

  // Meanwhile tab 5's conversation gets a reply while tab 5 is in the background.
  const convB = convs[5];
  const post = await context.request.post(`/api/conversations/${encodeURIComponent(convB)}/messages`, {
    data: { text: '/count 150' },
  });
  assert.equal(post.status(), 202);

  const n = (await replies(context, convA)) + 1;
  await send(tabs[0], '/count 300');
  const [a0, a1] = await Promise.all([
    waitAssistant(tabs[0], { count: n, status: 'complete', timeout: 20_000 }),
    waitAssistant(tabs[1], { count: n, status: 'complete', timeout: 20_000 }),
  ]);
  assert.equal(a0.text, countText(300));
  assert.equal(a1.text, countText(300), 'the reply reached the other tab showing it');
  assert.deepEqual((await messages(tabs[1])).map((m) => m.id), (await messages(tabs[0])).map((m) => m.id));

  // The background tabs come back and show exactly what they missed, once.
  await setVisible(tabs[2], true);
  await waitConnection(tabs[2], 'live', 15_000);
  await waitAssistant(tabs[2], { count: n, status: 'complete', timeout: 15_000 });
  const back2 = await messages(tabs[2]);
  assertOnce(back2, 'tab 2');
  assert.deepEqual(back2, await messages(tabs[0]), 'tab 2 shows what tab 0 shows');

  await waitAssistant(tabs[5], { count: 1, status: 'interrupted' }); // its own earlier send
  assert.equal(await tabs[5].locator('[data-testid="missed-hint"]').isVisible(), true, 'the background tab heard of the new reply');
  await setVisible(tabs[5], true);
  await waitConnection(tabs[5], 'live', 15_000);
  const b = await waitAssistant(tabs[5], { count: 2, status: 'complete', timeout: 15_000 });
  assert.equal(b.text, countText(150));
  const back5 = await messages(tabs[5]);
  assertOnce(back5, 'tab 5');
  assert.deepEqual(back5.map((m) => [m.role, m.status]), [
    ['user', 'complete'], ['assistant', 'interrupted'], ['user', 'complete'], ['assistant', 'complete'],
  ]);
  for (const tab of [tabs[2], tabs[5]]) assert.deepEqual((await recorded(tab)).bad, [], 'no lost or doubled word');

  const busy = connections(server.port);
  t.diagnostic(`ten tabs, three in front: ${busy} TCP connections to the server`);
});

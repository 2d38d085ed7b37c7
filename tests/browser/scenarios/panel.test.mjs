// The side panel and the empty new chat (issue 13's session cookie and list API underneath):
// `/` stores nothing until the first send; the panel lists this browser's conversations,
// most recent first; one opens in place (same page, live again), renames in place, deletes
// after a confirmation; at 390 px the panel folds away behind its toggle.

import assert from 'node:assert/strict';

import { messages, scenario, sel, send, serverConversation, waitAssistant, waitConnection, needsConversationList } from '../lib/harness.mjs';

const list = '[data-testid="conversation-list"]';
const item = '[data-testid="conversation-item"]';

/** The panel's items: [id, title] in order. */
const items = (page) => page.$$eval(item, (els) => els.map((el) => [el.dataset.conversationId, el.querySelector('a').textContent]));

async function waitItems(page, n) {
  await page.waitForFunction(([s, n]) => document.querySelectorAll(s).length === n, [item, n], { timeout: 10_000, polling: 50 });
  return items(page);
}

/**
 * Waits until the panel shows exactly `expected` ([id, title] in order), then asserts it (a
 * timeout fails with what it shows). Not just a count: the list fetched right after the
 * first send's create can land before the message is stored and show "New conversation"
 * for a moment, until the refresh that `user.message` triggers arrives.
 */
async function waitListed(page, expected, message) {
  try {
    await page.waitForFunction(
      ([s, want]) => JSON.stringify([...document.querySelectorAll(s)].map((el) => [el.dataset.conversationId, el.querySelector('a').textContent])) === want,
      [item, JSON.stringify(expected)],
      { timeout: 10_000, polling: 50 },
    );
  } catch (e) {
    if (e.name !== 'TimeoutError') throw e;
  }
  assert.deepEqual(await items(page), expected, message);
}

/** Starts a new chat from the panel and sends its first message; returns the new id. */
async function chat(page, text) {
  const toggle = page.locator('[data-testid="conversation-panel-toggle"]');
  if (await toggle.isVisible()) await toggle.click(); // narrow: New chat is in the panel
  await page.locator(sel.newChat).click();
  await page.waitForURL((u) => u.pathname === '/');
  await send(page, text);
  await page.waitForURL((u) => u.pathname.startsWith('/c/'));
  await waitAssistant(page, { status: 'complete' });
  return decodeURIComponent(new URL(page.url()).pathname.slice(3));
}

/** This browser's conversations as the server lists them (no session yet: none). */
async function ownList(context) {
  const res = await context.request.get('/api/conversations');
  if (res.status() === 401) return [];
  assert.equal(res.status(), 200, 'the session cookie lists this browser\'s conversations');
  return (await res.json()).conversations;
}

scenario('new chat: `/` stores nothing until the first send, then moves to /c/{id}', { server: { delayMs: 2 }, needs: needsConversationList }, async ({ page, context }) => {
  await page.goto('/');
  assert.equal(new URL(page.url()).pathname, '/', '`/` does not redirect');
  await waitConnection(page, 'live');
  assert.equal((await messages(page)).length, 0);
  assert.deepEqual(await ownList(context), [], 'nothing stored by opening the page');

  await send(page, '/echo first reply');
  await page.waitForURL((u) => u.pathname.startsWith('/c/'));
  const reply = await waitAssistant(page, { status: 'complete' });
  assert.equal(reply.text, 'first reply');
  const id = decodeURIComponent(new URL(page.url()).pathname.slice(3));
  await waitListed(page, [[id, '/echo first reply']], 'the panel lists it, named after its first message');
  assert.equal((await serverConversation(context, id)).messages.length, 2);
});

scenario('panel: most recent first, open in place, rename, delete after confirming', { server: { delayMs: 2 }, timeout: 60_000, needs: needsConversationList }, async ({ page, context }) => {
  await page.goto('/');
  const c1 = await chat(page, '/echo one');
  const c2 = await chat(page, '/echo two');
  const c3 = await chat(page, '/echo three');
  assert.deepEqual((await waitItems(page, 3)).map(([id]) => id), [c3, c2, c1], 'most recent first');

  // Opening one happens in place: same document, the conversation's history, live.
  await page.evaluate(() => { window.__samePage = true; });
  await page.locator(`${item}[data-conversation-id="${c1}"] a`).click();
  await page.waitForURL(`**/c/${c1}`);
  await waitConnection(page, 'live');
  assert.equal(await page.evaluate(() => window.__samePage), true, 'no page load');
  assert.deepEqual((await messages(page)).map((m) => m.text), ['/echo one', 'one']);
  await send(page, '/echo again');
  await waitAssistant(page, { count: 2, status: 'complete' });
  await page.waitForFunction(([s, id]) => document.querySelector(s)?.dataset.conversationId === id, [item, c1]);

  // Back goes to the previous conversation, also in place.
  await page.goBack();
  await page.waitForURL(`**/c/${c3}`);
  await page.waitForFunction((s) => document.querySelectorAll(s).length === 2, sel.message);
  assert.equal(await page.evaluate(() => window.__samePage), true);

  // Rename in place.
  await page.locator(`${item}[data-conversation-id="${c2}"] [data-testid="rename"]`).click();
  const input = page.locator('[data-testid="rename-input"]');
  await input.fill('Renamed chat');
  await input.press('Enter');
  await page.locator(`${item}[data-conversation-id="${c2}"] a`, { hasText: 'Renamed chat' }).waitFor();
  assert.equal((await ownList(context)).find((c) => c.id === c2).title, 'Renamed chat');

  // Delete asks first: dismissed, nothing happens; accepted, it is gone everywhere.
  page.once('dialog', (d) => d.dismiss());
  await page.locator(`${item}[data-conversation-id="${c2}"] [data-testid="delete"]`).click();
  assert.equal(await page.locator(`${item}[data-conversation-id="${c2}"]`).count(), 1, 'kept when not confirmed');
  page.once('dialog', (d) => d.accept());
  await page.locator(`${item}[data-conversation-id="${c2}"] [data-testid="delete"]`).click();
  await page.locator(`${item}[data-conversation-id="${c2}"]`).waitFor({ state: 'detached' });
  assert.equal((await context.request.get(`/api/conversations/${c2}`)).status(), 404);

  // Deleting the open conversation leaves an empty new chat.
  page.once('dialog', (d) => d.accept());
  await page.locator(`${item}[data-conversation-id="${c3}"] [data-testid="delete"]`).click();
  await page.waitForURL((u) => u.pathname === '/');
  assert.equal((await messages(page)).length, 0);
  assert.deepEqual((await waitItems(page, 1)).map(([id]) => id), [c1]);
});

scenario('panel at 390 px: folded away, the toggle shows it, opening an item folds it again', { server: { delayMs: 2 }, needs: needsConversationList }, async ({ page }) => {
  await page.setViewportSize({ width: 390, height: 760 });
  await page.goto('/');
  const c1 = await chat(page, '/echo one');
  await chat(page, '/echo two');
  const panel = page.locator('[data-testid="conversation-panel"]');
  const toggle = page.locator('[data-testid="conversation-panel-toggle"]');
  assert.equal(await panel.isVisible(), false);
  await toggle.click();
  await panel.waitFor({ state: 'visible' });
  await waitItems(page, 2);
  await page.locator(`${item}[data-conversation-id="${c1}"] a`).click();
  await page.waitForURL(`**/c/${c1}`);
  await panel.waitFor({ state: 'hidden' });
  assert.equal(await toggle.getAttribute('aria-expanded'), 'false');
});

// The network path goes away: the server process stops and a new one starts on the same
// port and the same database file. The page says it is reconnecting, comes back live by
// itself, shows the same history, and a new message works.

import assert from 'node:assert/strict';

import {
  countText,
  messages,
  openNewChat,
  scenario,
  sel,
  send,
  serverConversation,
  waitAssistant,
  waitConnection,
} from '../lib/harness.mjs';

scenario('server restart: reconnecting, then live again, nothing lost', { server: { fileDb: true, delayMs: 5 }, timeout: 60_000 }, async ({ page, server, context }) => {
  const id = await openNewChat(page);
  await send(page, '/count 20');
  await waitAssistant(page, { status: 'complete' });
  const before = await messages(page);
  assert.equal(before.length, 2);

  await server.kill();
  await page.waitForFunction(
    (s) => document.querySelector(s).dataset.state !== 'live',
    sel.connection,
    { timeout: 10_000, polling: 50 },
  );
  await waitConnection(page, 'reconnecting');
  assert.deepEqual(await messages(page), before, 'the page keeps showing the history while down');

  await server.launch();
  await waitConnection(page, 'live', 20_000);
  assert.deepEqual(await messages(page), before, 'the history is still there after reconnecting');

  await send(page, '/count 5');
  const reply = await waitAssistant(page, { count: 2, status: 'complete', timeout: 10_000 });
  assert.equal(reply.text, countText(5));
  assert.ok(await page.locator(sel.error).isHidden(), 'no error shown');

  // The server kept everything: a fresh render of the page shows all four messages.
  await page.reload();
  await waitConnection(page, 'live');
  const after = await messages(page);
  assert.deepEqual(
    after.map((m) => [m.role, m.status, m.text]),
    [
      ['user', 'complete', '/count 20'],
      ['assistant', 'complete', countText(20)],
      ['user', 'complete', '/count 5'],
      ['assistant', 'complete', countText(5)],
    ],
  );
  assert.equal((await serverConversation(context, id)).messages.length, 4);
});

scenario('events stream refused (503): the page keeps retrying and comes back live', { server: { delayMs: 5 } }, async ({ page, context }) => {
  // The first two connections to the event stream are answered 503 (as a busy server
  // would): EventSource gives up on a non-200 answer, so the page itself must retry.
  let refused = 0;
  await context.route(/\/api\/conversations\/[^/]+\/events/, (route) => {
    if (refused < 2) {
      refused += 1;
      return route.fulfill({
        status: 503,
        contentType: 'application/json',
        body: '{"error":{"code":"unavailable","message":"busy, try again"}}',
      });
    }
    return route.continue();
  });
  // `/` stores nothing: the first message creates the conversation and its stream opens.
  await page.goto('/');
  await send(page, '/echo first');
  await page.waitForURL(/\/c\/[^/]+$/);
  await page.waitForFunction(() => window.__cw && true);
  await waitConnection(page, 'reconnecting');
  await waitConnection(page, 'live', 15_000);
  assert.equal(refused, 2);
  // What happened while the stream was refused arrives once it is live.
  assert.equal((await waitAssistant(page, { status: 'complete' })).text, 'first');

  await send(page, '/count 7');
  const reply = await waitAssistant(page, { count: 2, status: 'complete' });
  assert.equal(reply.text, countText(7));
});

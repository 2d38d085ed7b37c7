// A send whose answer is lost (the request reached the server, the answer never reached the
// page) is an error on the page with the text kept; pressing Send again retries with the
// same `Idempotency-Key`, so the server answers as the first time and stores the message
// once. The next send has a new key.

import assert from 'node:assert/strict';

import { conversationId, messages, openNewChat, scenario, sel, send, serverConversation, waitAssistant } from '../lib/harness.mjs';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

scenario('a retried send after a lost answer is stored once', { server: { delayMs: 5 } }, async ({ page, context }) => {
  await openNewChat(page);
  const id = conversationId(page);
  const sent = [];
  await page.route('**/api/conversations/*/messages', async (route) => {
    const key = route.request().headers()['idempotency-key'];
    sent.push(key);
    if (sent.length === 1) {
      // Delivered, but the answer is lost on the way back.
      await route.fetch();
      await route.abort('connectionreset');
    } else {
      await route.continue();
    }
  });

  await send(page, '/echo only once');
  await page.locator(sel.error).filter({ hasText: /\S/ }).waitFor();
  assert.equal(await page.locator(sel.composer).inputValue(), '/echo only once', 'the text is kept');
  await page.locator(sel.composer).press('Enter');
  await page.waitForFunction((s) => document.querySelector(s)?.value === '', sel.composer);
  await waitAssistant(page, { status: 'complete' });

  assert.equal(sent.length, 2);
  assert.match(sent[0] ?? '', UUID, `a random key per send: ${sent[0]}`);
  assert.equal(sent[1], sent[0], 'the retry has the same key');
  const stored = await serverConversation(context, id);
  assert.deepEqual(stored.messages.map((m) => [m.role, m.text]), [['user', '/echo only once'], ['assistant', 'only once']]);
  assert.deepEqual((await messages(page)).map((m) => m.role), ['user', 'assistant'], 'shown once');

  await send(page, '/echo again');
  await waitAssistant(page, { count: 2, status: 'complete' });
  assert.equal(sent.length, 3);
  assert.notEqual(sent[2], sent[0], 'a new send, a new key');
});

// Picking a provider in the page: the built-in simulated NLP service (kind `webhook`: it
// answers through signed callbacks to /webhooks/nlp), a new chat with it (stored only when
// its first message is sent), and its reply arriving in the page.

import assert from 'node:assert/strict';

import {
  messages,
  openNewChat,
  scenario,
  sel,
  send,
  serverConversation,
  storedMessage,
  waitAssistant,
  waitConnection,
} from '../lib/harness.mjs';

scenario('webhook provider: pick it, New chat, its reply arrives', { server: { delayMs: 5 } }, async ({ page, context }) => {
  await openNewChat(page);
  const options = await page.$$eval(`${sel.picker} option`, (os) =>
    os.map((o) => ({ value: o.value, kind: o.dataset.kind })),
  );
  const hook =
    options.find((o) => o.kind === 'webhook' && o.value === 'simulated') ||
    options.find((o) => o.kind === 'webhook');
  assert.ok(hook, `no provider of kind "webhook" in the picker: ${JSON.stringify(options)}`);

  await page.selectOption(sel.picker, hook.value);
  await page.locator(sel.newChat).click();
  await page.waitForURL((u) => u.pathname === '/');
  assert.equal((await messages(page)).length, 0, 'a new chat starts empty');

  await send(page, 'Hello, NLP service!');
  await page.waitForURL((u) => u.pathname.startsWith('/c/'));
  await waitConnection(page, 'live');
  const id = decodeURIComponent(new URL(page.url()).pathname.slice('/c/'.length));
  assert.equal(await page.getAttribute('[data-testid="provider-badge"]', 'data-kind'), 'webhook');
  assert.equal(await page.locator(sel.picker).inputValue(), hook.value);
  assert.equal((await serverConversation(context, id)).provider, hook.value);

  const reply = await waitAssistant(page, { status: 'complete', minLength: 1, timeout: 20_000 });

  const stored = await storedMessage(context, id, reply.id);
  assert.equal(stored.status, 'complete');
  assert.equal(reply.text, stored.text.replaceAll('`', ''), 'the stored reply, its `code` rendered');
  assert.ok(await page.locator(sel.error).isHidden(), 'no error shown');
});

// Two tabs on one conversation (one browser context, so they share the cookie): typing in
// one shows the typing indicator in the other (WebSocket presence), and the other tab sees
// the reply stream live (SSE), not only its end.

import assert from 'node:assert/strict';

import {
  countText,
  growingReply,
  messages,
  recorded,
  scenario,
  secondTab,
  sel,
  send,
  streamingSteps,
  waitAssistant,
} from '../lib/harness.mjs';

scenario('second tab: typing in one shows the typing indicator in the other', { server: { delayMs: 5 } }, async ({ page: a, newPage }) => {
  const b = await secondTab(a, newPage);
  assert.equal(await b.locator(sel.typing).isVisible(), false, 'nobody is typing yet');

  // Type like a person (one key at a time) while tab B watches for the indicator. The page
  // refreshes "typing" every 2 s, so a socket that opens mid-typing still gets it.
  const composer = a.locator(sel.composer);
  await composer.click();
  const typing = composer.pressSequentially('hello from the other tab, are you there?', { delay: 60 });
  await b.locator(sel.typing).waitFor({ state: 'visible', timeout: 8000 });
  await typing;
  assert.equal(await a.locator(sel.typing).isVisible(), false, 'a tab never sees its own typing');

  // Sending ends typing: the indicator in B goes away, and B gets the message.
  await composer.press('Enter');
  await b.locator(sel.typing).waitFor({ state: 'hidden', timeout: 5000 });
  await b.locator(`${sel.user} .text`, { hasText: 'hello from the other tab' }).waitFor();

  // And the other way round.
  await b.locator(sel.composer).pressSequentially('yes', { delay: 50 });
  await a.locator(sel.typing).waitFor({ state: 'visible', timeout: 8000 });
  await b.locator(sel.composer).fill('');
  await b.locator(sel.composer).blur();
  await a.locator(sel.typing).waitFor({ state: 'hidden', timeout: 5000 });
});

scenario('second tab: sees the reply stream live, word by word', { server: { delayMs: 8 } }, async ({ page: a, newPage }) => {
  const N = 250;
  const b = await secondTab(a, newPage);
  await send(a, `/count ${N}`);

  // B sees the user's message and the reply growing, sample after sample.
  await b.locator(`${sel.user} .text`, { hasText: `/count ${N}` }).waitFor();
  const { first } = await growingReply(b, 4);
  const mid = (await messages(b)).find((m) => m.id === first.id);
  assert.equal(mid.status, 'streaming', 'tab B saw the reply while it was still streaming');
  assert.ok(await b.locator(sel.stop).isVisible(), 'tab B can stop the reply too');

  const [doneA, doneB] = await Promise.all([
    waitAssistant(a, { status: 'complete', timeout: 15_000 }),
    waitAssistant(b, { status: 'complete', timeout: 15_000 }),
  ]);
  assert.equal(doneA.text, countText(N));
  assert.equal(doneB.text, countText(N));

  const recB = await recorded(b);
  assert.deepEqual(recB.bad, [], 'no lost or doubled word in tab B');
  const steps = streamingSteps(recB, doneB.id);
  assert.ok(steps.length >= 10, `tab B painted the reply in many steps (${steps.length})`);
  assert.deepEqual((await messages(a)).map((m) => m.id), (await messages(b)).map((m) => m.id));
});

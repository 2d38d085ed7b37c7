// Streaming in the page: a reply grows word by word and ends complete; Stop (button or
// Escape) really stops it; a reload mid-reply renders the history and picks the reply up
// with no word lost or doubled.

import assert from 'node:assert/strict';

import {
  countText,
  growingReply,
  messages,
  openNewChat,
  recorded,
  scenario,
  sel,
  send,
  serverConversation,
  sleep,
  storedMessage,
  streamingSteps,
  waitAssistant,
  wordCount,
} from '../lib/harness.mjs';

scenario('a reply streams in word by word and ends complete', { server: { delayMs: 12 } }, async ({ page, context }) => {
  const id = await openNewChat(page);
  assert.equal(await page.locator(sel.stop).isVisible(), false, 'Stop is hidden while idle');

  await send(page, 'Tell me a story');
  await page.locator(`${sel.user} .text`, { hasText: 'Tell me a story' }).waitFor();
  // The message comes back over SSE, maybe before the POST's answer that clears the box.
  await page.waitForFunction((s) => document.querySelector(s).value === '', sel.composer);

  // Sample the growing text: each sample is a later, longer state of the same message.
  const { first, lengths: samples } = await growingReply(page, 5);
  const mid = (await messages(page)).find((m) => m.id === first.id);
  assert.equal(mid.status, 'streaming', `still streaming after samples ${samples}`);
  assert.ok(await page.locator(sel.stop).isVisible(), 'Stop is visible while the bot replies');
  assert.notEqual(await page.getAttribute(sel.botState, 'data-state'), 'idle');

  const done = await waitAssistant(page, { status: 'complete', timeout: 30_000 });
  assert.ok(done.text.length > samples.at(-1), 'the reply went on after the samples');
  assert.ok(done.text.startsWith('Once upon a time'), done.text.slice(0, 80));

  const stored = await storedMessage(context, id, done.id);
  assert.equal(stored.status, 'complete');
  // Rendered as Markdown: its paragraphs are <p>s, so compare the words.
  const words = (s) => s.split(/\s+/).filter(Boolean).join(' ');
  assert.equal(words(done.text), words(stored.text), 'the page shows exactly the stored reply');

  const steps = streamingSteps(await recorded(page), done.id);
  assert.ok(steps.length >= 10, `the text grew in many steps (${steps.length})`);
  for (let i = 1; i < steps.length; i++) assert.ok(steps[i][0] > steps[i - 1][0], 'never shrinks');

  await page.locator(sel.stop).waitFor({ state: 'hidden' });
  await page.waitForFunction((s) => document.querySelector(s).dataset.state === 'idle', sel.botState);
});

/** Starts `/count 3000`, stops it with `how`, and checks that it stays stopped. */
async function stopMidReply({ page, context }, how) {
  const id = await openNewChat(page);
  await send(page, '/count 3000');
  await waitAssistant(page, { status: 'streaming', minLength: 100 });
  const stop = page.locator(sel.stop);
  assert.ok(await stop.isVisible(), 'Stop is visible while the bot replies');

  await how();

  const stopped = await waitAssistant(page, { status: 'interrupted', timeout: 5000 });
  const words = wordCount(stopped.text);
  assert.ok(words > 0 && words < 3000, `stopped mid-reply (${words} words)`);
  assert.equal(stopped.text, countText(words), 'the kept text is exactly 1 2 … k');

  // The condition here is time itself: nothing more arrives.
  await sleep(500);
  const later = (await messages(page)).find((m) => m.id === stopped.id);
  assert.equal(later.text, stopped.text, 'the text stopped growing');
  assert.equal(later.status, 'interrupted');

  await stop.waitFor({ state: 'hidden' });
  assert.equal(await page.getAttribute(sel.botState, 'data-state'), 'idle');
  assert.ok(await page.locator(`${sel.assistant} .note`).isVisible(), 'the message says it was stopped');

  const stored = await storedMessage(context, id, stopped.id);
  assert.equal(stored.status, 'interrupted');
  assert.equal(stored.text, stopped.text, 'the server kept exactly what the page shows');
  assert.deepEqual((await recorded(page)).bad, [], 'no lost or doubled word on the way');
}

scenario('Stop button interrupts the reply mid-stream', { server: { delayMs: 5 } }, async (env) => {
  await stopMidReply(env, () => env.page.locator(sel.stop).click());
});

scenario('Escape interrupts the reply mid-stream', { server: { delayMs: 5 } }, async (env) => {
  await stopMidReply(env, () => env.page.keyboard.press('Escape'));
});

scenario('reload mid-reply: history rendered, the reply goes on, no word lost or doubled', { server: { delayMs: 5 } }, async ({ page, context }) => {
  const N = 600;
  const id = await openNewChat(page);
  await send(page, `/count ${N}`);
  const before = await waitAssistant(page, { status: 'streaming', minLength: 150 });
  assert.deepEqual((await recorded(page)).bad, [], 'before the reload');

  await page.reload();

  // The server rendered the history: the first state the new page ever had already holds
  // the user's message and the reply so far (not an empty list filled in later).
  const rec = await recorded(page);
  const firstSeen = (rec.history[before.id] || [])[0];
  assert.ok(firstSeen, 'the reply in progress is on the reloaded page');
  assert.ok(firstSeen[0] >= before.text.length, `rendered with its text so far (${firstSeen})`);
  const users = (await messages(page)).filter((m) => m.role === 'user');
  assert.deepEqual(users.map((m) => m.text), [`/count ${N}`]);

  const done = await waitAssistant(page, { status: 'complete', timeout: 20_000 });
  assert.equal(done.id, before.id);
  assert.equal(done.text, countText(N), 'exactly 1 2 … N');

  const after = await recorded(page);
  assert.deepEqual(after.bad, [], 'no lost or doubled word while streaming');
  const steps = streamingSteps(after, done.id);
  assert.ok(steps.length >= 3, `the reloaded page streamed the rest live (${steps.length} steps)`);

  const all = await messages(page);
  assert.equal(all.length, 2, 'one user message and one reply, nothing doubled');
  const conv = await serverConversation(context, id);
  assert.equal(conv.messages.at(-1).text, countText(N));
});

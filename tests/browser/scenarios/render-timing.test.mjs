// How long the page spends rendering a 2,000-word Markdown reply while it streams (one word
// per delta), measured in the page by static/messages.js (window.chatwireStats) and
// reported, not asserted: timing is a figure for docs, never a test condition. What the test
// does check is that the reply arrived whole and that rendering was throttled (far fewer
// renders than tokens).

import assert from 'node:assert/strict';

import { openNewChat, scenario, send, waitAssistant } from '../lib/harness.mjs';

const WORDS = 2000;

function longMarkdown() {
  const words = [];
  for (let i = 0; i < WORDS; i++) {
    let w = `w${i}`;
    if (i % 17 === 3) w = `**${w}**`;
    if (i % 23 === 5) w = `\`${w}\``;
    words.push(w);
  }
  // Paragraphs of 50 words, a list and a code block now and then.
  const out = [];
  for (let i = 0; i < WORDS; i += 50) {
    const chunk = words.slice(i, i + 50);
    if ((i / 50) % 8 === 7) out.push(chunk.map((w) => `- ${w}`).slice(0, 5).join('\n') + '\n\n' + chunk.slice(5).join(' '));
    else if ((i / 50) % 8 === 4) out.push('```\n' + chunk.join(' ') + '\n```');
    else out.push(chunk.join(' '));
  }
  return out.join('\n\n');
}

scenario(`render timing: a ${WORDS}-word Markdown reply streamed word by word`, { server: { delayMs: 3 }, timeout: 90_000 }, async ({ page, t }) => {
  const text = longMarkdown();
  assert.ok(text.length < 16 * 1024, `fits one message (${text.length} bytes)`);
  await openNewChat(page);
  await page.evaluate(() => Object.assign(window.chatwireStats, { renders: 0, renderMs: 0, maxRenderMs: 0 }));
  const t0 = Date.now();
  await send(page, `/echo ${text}`);
  await waitAssistant(page, { status: 'complete', timeout: 60_000 });
  const wall = Date.now() - t0;
  const stats = await page.evaluate(() => ({ ...window.chatwireStats }));
  const once = await page.evaluate(async (src) => {
    const { renderMarkdown } = await import('/static/markdown.js');
    const el = document.createElement('div');
    const a = performance.now();
    for (let i = 0; i < 20; i++) renderMarkdown(el, src);
    return (performance.now() - a) / 20;
  }, text);

  const words = await page.$eval('[data-testid="message"][data-role="assistant"] .text', (el) => el.textContent.match(/w\d+/g).length);
  assert.equal(words, WORDS, 'every word arrived once');
  assert.ok(stats.renders < WORDS / 2, `throttled to frames: ${stats.renders} renders for ${WORDS} tokens`);

  const lines = [
    `reply: ${WORDS} words, ${text.length} bytes, streamed in ${wall} ms`,
    `renders: ${stats.renders} (one per frame with news), total ${stats.renderMs.toFixed(1)} ms`,
    `per token: ${(stats.renderMs / WORDS).toFixed(3)} ms; per render: mean ${(stats.renderMs / stats.renders).toFixed(2)} ms, max ${stats.maxRenderMs.toFixed(2)} ms`,
    `one full render of the finished reply: ${once.toFixed(2)} ms`,
  ];
  for (const l of lines) t.diagnostic(l);
});

// Accessibility: axe-core (installed by `npm ci`, run inside the page) finds no serious or
// critical violation idle, while a reply streams, and with the panel open, at 1000 px and at
// 390 px wide; and the page works from the keyboard alone (tab order, Enter sends, Escape
// stops, the panel and a message's actions reachable).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

import { openNewChat, scenario, sel, send, waitAssistant } from '../lib/harness.mjs';

const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/** axe's serious and critical violations on the page as it is now. */
async function violations(page) {
  // Evaluated through the DevTools protocol, which the page's CSP does not govern.
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(AXE);
  const found = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 5) }));
  });
  return found.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

const MD = '/echo ## Steps\n\n- [x] build\n- [ ] ship\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```sh\ncargo run --release\n```\n\n[docs](https://example.com)';

for (const width of [1000, 390]) {
  scenario(`axe: no serious or critical violation at ${width} px (idle, streaming, panel open)`, { server: { delayMs: 8 }, timeout: 90_000 }, async ({ page }) => {
    await page.setViewportSize({ width, height: 760 });
    await openNewChat(page);
    assert.deepEqual(await violations(page), [], 'empty chat');
    await send(page, MD);
    await waitAssistant(page, { status: 'complete' });
    assert.deepEqual(await violations(page), [], 'idle, with Markdown');

    await send(page, '/count 2000');
    await waitAssistant(page, { count: 2, status: 'streaming', minLength: 50 });
    assert.deepEqual(await violations(page), [], 'streaming');
    await page.locator(sel.stop).click();
    await waitAssistant(page, { count: 2, status: 'interrupted' });

    const toggle = page.locator('[data-testid="conversation-panel-toggle"]');
    if (width < 700) {
      assert.equal(await page.locator('[data-testid="conversation-panel"]').isVisible(), false, 'folded away when narrow');
      await toggle.click();
      assert.equal(await toggle.getAttribute('aria-expanded'), 'true');
    } else {
      assert.equal(await toggle.isVisible(), false, 'no toggle when there is room');
    }
    assert.equal(await page.locator('[data-testid="conversation-panel"]').isVisible(), true);
    assert.deepEqual(await violations(page), [], 'panel open');
  });
}

/** The focused element, described by its test id (or tag). */
const focused = (page) => page.evaluate(() => {
  const el = document.activeElement;
  return el ? el.dataset.testid || el.getAttribute('aria-label') || el.tagName.toLowerCase() : null;
});

async function tabUntil(page, want, max = 40) {
  const seen = [];
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    const f = await focused(page);
    seen.push(f);
    if (f === want) return seen;
  }
  throw new Error(`never reached ${want} with Tab: ${seen.join(' → ')}`);
}

scenario('keyboard only: Tab reaches everything, Enter sends, Escape stops, Shift+Enter adds a line', { server: { delayMs: 5 } }, async ({ page }) => {
  await openNewChat(page);
  await page.evaluate(() => document.activeElement?.blur());
  const order = await tabUntil(page, 'composer');
  assert.ok(order.includes('new-chat'), `the panel's New chat comes first: ${order.join(' → ')}`);

  await page.keyboard.type('first line');
  await page.keyboard.press('Shift+Enter');
  await page.keyboard.type('second line');
  await page.keyboard.press('Enter');
  await page.locator(`${sel.user} .text`, { hasText: 'second line' }).waitFor();
  assert.equal(await page.$eval(`${sel.user} .text`, (t) => t.textContent), 'first line\nsecond line');
  await waitAssistant(page, { status: 'complete' });

  await page.keyboard.type('/count 3000');
  await page.keyboard.press('Enter');
  await waitAssistant(page, { count: 2, status: 'streaming', minLength: 30 });
  await page.keyboard.press('Escape');
  await waitAssistant(page, { count: 2, status: 'interrupted' });

  // A message's actions are reachable: Shift+Tab back from the composer into the list.
  const back = [];
  for (let i = 0; i < 12 && !back.includes('copy'); i++) {
    await page.keyboard.press('Shift+Tab');
    back.push(await focused(page));
  }
  assert.ok(back.includes('regenerate') && back.includes('copy'), `actions reachable: ${back.join(' ← ')}`);
});

scenario('keyboard only at 390 px: the panel opens from its toggle, Escape folds it', { server: { delayMs: 5 } }, async ({ page }) => {
  await page.setViewportSize({ width: 390, height: 760 });
  await openNewChat(page);
  await page.evaluate(() => document.activeElement?.blur());
  const order = await tabUntil(page, 'conversation-panel-toggle');
  assert.ok(!order.includes('new-chat'), 'a folded panel is out of the tab order');
  await page.keyboard.press('Enter');
  await page.locator('[data-testid="conversation-panel"]').waitFor({ state: 'visible' });
  // Focus moved into the panel; New chat is reachable.
  const inside = await focused(page);
  const path = inside === 'new-chat' ? [inside] : await tabUntil(page, 'new-chat');
  assert.ok(path.length > 0);
  await page.keyboard.press('Escape');
  await page.locator('[data-testid="conversation-panel"]').waitFor({ state: 'hidden' });
  assert.equal(await focused(page), 'conversation-panel-toggle', 'focus returns to the toggle');
});

// A message's actions, in two tabs of one conversation (issue 14's operations underneath):
// Regenerate on the last reply replaces it in place (its `reply.started` names the reply it
// replaces); Edit on a user message edits in place and resends, the later messages go (a
// `sync`); Copy copies a user message's text. Both tabs and a reload agree.

import assert from 'node:assert/strict';

import { messages, scenario, secondTab, sel, send, waitAssistant, waitConnection, needsOperations } from '../lib/harness.mjs';

const shape = async (page) => (await messages(page)).map((m) => [m.role, m.status, m.text]);

scenario('regenerate: the last reply is replaced in place, in every tab', { server: { delayMs: 5 }, needs: needsOperations }, async ({ page, newPage }) => {
  const b = await secondTab(page, newPage);
  await send(page, '/echo the first answer');
  const first = await waitAssistant(page, { status: 'complete' });
  await waitAssistant(b, { status: 'complete' });
  assert.equal(await page.locator(`${sel.user} [data-testid="regenerate"]`).isVisible(), false, 'no Regenerate on a user message');
  assert.equal(await page.locator(`${sel.assistant} [data-testid="edit"]`).isVisible(), false, 'no Edit on a reply');

  await page.locator(`${sel.assistant} [data-testid="regenerate"]`).click();
  for (const tab of [page, b]) {
    await tab.waitForFunction(
      ([s, old]) => {
        const all = document.querySelectorAll(s);
        return all.length === 1 && all[0].dataset.messageId !== old && all[0].dataset.status === 'complete';
      },
      [sel.assistant, first.id],
      { timeout: 10_000, polling: 50 },
    );
    assert.deepEqual(await shape(tab), [['user', 'complete', '/echo the first answer'], ['assistant', 'complete', 'the first answer']]);
  }
  await page.reload();
  await waitConnection(page, 'live');
  assert.deepEqual(await shape(page), await shape(b), 'the stored history agrees');
  assert.ok(await page.locator(`${sel.assistant} [data-testid="regenerate"]`).isVisible(), 'the new reply can be regenerated again');
});

scenario('edit: a user message is edited in place and resent; later messages go, in every tab', { server: { delayMs: 5 }, needs: needsOperations }, async ({ page, newPage, context }) => {
  await context.grantPermissions(['clipboard-read', 'clipboard-write']);
  const b = await secondTab(page, newPage);
  await send(page, '/echo one');
  await waitAssistant(page, { status: 'complete' });
  await send(page, '/echo two');
  await waitAssistant(page, { count: 2, status: 'complete' });
  await waitAssistant(b, { count: 2, status: 'complete' });

  // Copy on a user message copies its text exactly.
  await page.locator(`${sel.user} [data-testid="copy"]`).first().click();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), '/echo one');

  // Escape cancels an edit; nothing changes.
  await page.locator(`${sel.user} [data-testid="edit"]`).first().click();
  await page.locator('[data-testid="edit-text"]').press('Escape');
  assert.equal(await page.locator('[data-testid="edit-text"]').count(), 0);
  assert.equal((await messages(page)).length, 4);

  await page.locator(`${sel.user} [data-testid="edit"]`).first().click();
  const box = page.locator('[data-testid="edit-text"]');
  await box.fill('/echo uno');
  await box.press('Enter');
  const want = [['user', 'complete', '/echo uno'], ['assistant', 'complete', 'uno']];
  for (const tab of [page, b]) {
    await tab.waitForFunction(
      (s) => {
        const all = document.querySelectorAll(s);
        return all.length === 2 && all[1].dataset.status === 'complete';
      },
      sel.message,
      { timeout: 10_000, polling: 50 },
    );
    assert.deepEqual(await shape(tab), want);
  }
  await page.reload();
  await waitConnection(page, 'live');
  assert.deepEqual(await shape(page), want, 'stored so');
});

// A reply that fails shows why, live and after a reload: the provider is a real local HTTP
// server that answers every chat completion with 401, so the reply ends `reply.failed`.

import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { launchBrowser, openNewChat, sel, send, waitAssistant } from '../lib/harness.mjs';
import { ChatServer } from '../lib/server.mjs';

test('a failed reply shows its reason, also after a reload', { timeout: 60_000 }, async () => {
  const upstream = createServer((req, res) => {
    req.resume();
    res.writeHead(401, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { message: 'Incorrect API key provided', type: 'invalid_request_error', code: 'invalid_api_key' } }));
  });
  await new Promise((ok) => upstream.listen(0, '127.0.0.1', ok));
  const dir = mkdtempSync(join(tmpdir(), 'chatwire-failed-'));
  const config = join(dir, 'chatwire.toml');
  writeFileSync(config, [
    '[[providers]]',
    'name = "broken"',
    'kind = "openai"',
    `base_url = "http://127.0.0.1:${upstream.address().port}/v1"`,
    'api_key = "sk-test-not-a-real-key"',
    'model = "test-model"',
    'default = true',
  ].join('\n'));
  const server = await ChatServer.start({ args: ['--config', config] });
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage({ baseURL: server.base });
    await openNewChat(page);
    await send(page, 'Hello?');
    await waitAssistant(page, { status: 'failed', timeout: 20_000 });
    const note = page.locator(`${sel.assistant} .note`);
    const live = await note.textContent();
    assert.match(live, /^failed: \S/, `the reason is shown: ${live}`);
    assert.ok(!live.includes('sk-test'), 'no secret in it');

    await page.reload();
    await waitAssistant(page, { status: 'failed' });
    assert.equal(await note.textContent(), live, 'the same reason after a reload');
    assert.ok(await note.isVisible());
  } finally {
    await browser.close();
    await server.stop();
    upstream.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

// Refreshes docs/screenshot.png (the README's picture of the chat page): the side panel
// with a few conversations, a Markdown reply (a table, a task list, a code block) and a
// story streaming in from the offline bot.
//
//   cargo build && node tests/browser/screenshot.mjs

import { join } from 'node:path';

import { launchBrowser, send, waitAssistant } from './lib/harness.mjs';
import { ChatServer, REPO_ROOT } from './lib/server.mjs';

const MARKDOWN = [
  '/echo ## What each channel carries',
  '',
  '| channel | direction | carries |',
  '| --- | --- | --- |',
  '| **SSE** | server → browser | the reply, token by token |',
  '| **WebSocket** | both ways | typing, bot state, ~~polling~~ Stop |',
  '| **Webhooks** | provider → server | signed results |',
  '',
  '- [x] resume by `Last-Event-ID`',
  '- [x] any number of tabs',
  '',
  '```sh',
  'curl -N http://127.0.0.1:3000/api/conversations/$ID/events',
  '```',
].join('\n');

const out = join(REPO_ROOT, 'docs', 'screenshot.png');
const server = await ChatServer.start({ delayMs: 15 });
const browser = await launchBrowser();
try {
  const context = await browser.newContext({
    baseURL: server.base,
    viewport: { width: 1180, height: 860 },
    colorScheme: 'light',
  });
  const page = await context.newPage();
  await page.goto('/');
  for (const first of ['Hello!', 'What are webhooks?']) {
    await send(page, first);
    await page.waitForURL((u) => u.pathname.startsWith('/c/'));
    await waitAssistant(page, { count: 1, status: 'complete', timeout: 30_000 });
    await page.locator('[data-testid="new-chat"]').click();
    await page.waitForURL((u) => u.pathname === '/');
  }
  await send(page, MARKDOWN);
  await waitAssistant(page, { count: 1, status: 'complete', timeout: 30_000 });
  await send(page, 'Tell me a story');
  await waitAssistant(page, { count: 2, status: 'streaming', minLength: 200, timeout: 30_000 });
  await page.screenshot({ path: out });
  console.log(`wrote ${out}`);
} finally {
  await browser.close();
  await server.stop();
}

// Refreshes docs/screenshot.png (the README's picture of the chat page): a short
// conversation with the offline bot, taken while a story is streaming in.
//
//   cargo build && node tests/browser/screenshot.mjs

import { join } from 'node:path';

import { launchBrowser, openNewChat, send, waitAssistant } from './lib/harness.mjs';
import { ChatServer, REPO_ROOT } from './lib/server.mjs';

const out = join(REPO_ROOT, 'docs', 'screenshot.png');
const server = await ChatServer.start({ delayMs: 15 });
const browser = await launchBrowser();
try {
  const context = await browser.newContext({
    baseURL: server.base,
    viewport: { width: 960, height: 800 },
    colorScheme: 'light',
  });
  const page = await context.newPage();
  await openNewChat(page);
  await send(page, 'Hello!');
  await waitAssistant(page, { count: 1, status: 'complete', timeout: 20_000 });
  await send(page, 'What is chatwire?');
  await waitAssistant(page, { count: 2, status: 'complete', timeout: 30_000 });
  await send(page, 'Tell me a story');
  await waitAssistant(page, { count: 3, status: 'streaming', minLength: 260 });
  await page.screenshot({ path: out });
  console.log(`wrote ${out}`);
} finally {
  await browser.close();
  await server.stop();
}

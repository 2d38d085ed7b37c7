// The page with a real model: llama.cpp's llama-server running SmolLM2-135M-Instruct
// (scripts/real-llm builds it; scripts/test passes CHATWIRE_LLAMA_SERVER and
// CHATWIRE_LLM_MODEL), chatwire's `openai` kind pointed at it, and a person's message
// answered token by token in the page. Without the tier installed this file says so
// loudly and skips — except with CHATWIRE_REAL_LLM=1, where that is a failure.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { messages, openNewChat, scenario, sel, send, storedMessage, waitAssistant } from '../lib/harness.mjs';

/** A port free a moment ago: llama-server cannot bind port 0, so a bind that loses the
 *  race is retried on another port (see startLlama). */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const SERVER = process.env.CHATWIRE_LLAMA_SERVER;
const MODEL = process.env.CHATWIRE_LLM_MODEL;
const inCi = /^(1|true|yes)$/i.test(process.env.CHATWIRE_REAL_LLM || '');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** llama-server on a free port (another port if the bind fails), once /health is 200. */
async function startLlama() {
  let last = '';
  for (let i = 0; i < 5; i++) {
    const port = await freePort();
    const proc = spawn(SERVER, ['-m', MODEL, '--host', '127.0.0.1', '--port', String(port),
      '-c', '2048', '-np', '2', '-t', '2', '-n', '128'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    proc.stderr.on('data', (c) => { log = (log + c).slice(-4000); });
    let exited = false;
    proc.once('exit', () => { exited = true; });
    const deadline = Date.now() + 120_000;
    while (!exited && Date.now() < deadline) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(1000) });
        if (res.ok) return { proc, port };
      } catch {
        // Not listening yet.
      }
      await sleep(100);
    }
    proc.kill('SIGKILL');
    last = log;
  }
  throw new Error(`llama-server did not start:\n${last}`);
}

if (!SERVER || !MODEL) {
  const why = 'CHATWIRE_LLAMA_SERVER / CHATWIRE_LLM_MODEL are not set (eval "$(scripts/real-llm env)")';
  if (inCi) {
    test('real model in the page', () => assert.fail(`the real-model tier is not installed: ${why}`));
  } else {
    console.log(`\n!!!! REAL-MODEL BROWSER SCENARIO SKIPPED: ${why}\n`);
    test('real model in the page', { skip: why }, () => {});
  }
} else {
  const llama = await startLlama();
  after(() => llama.proc.kill('SIGKILL'));
  const dir = mkdtempSync(join(tmpdir(), 'chatwire-real-model-'));
  const config = join(dir, 'providers.toml');
  writeFileSync(config, `
[[providers]]
name = "local"
kind = "openai"
base_url = "http://127.0.0.1:${llama.port}/v1"
model = "smollm2"
label = "SmolLM2 (llama.cpp)"
default = true
max_tokens = 48
temperature = 0.2
`);

  scenario('real model: a reply from SmolLM2 streams into the page', { server: { args: ['--config', config] }, timeout: 120_000 }, async ({ page, context }) => {
    await openNewChat(page);
    assert.equal(await page.locator(sel.picker).inputValue(), 'local');
    await send(page, 'What is the capital of France?');
    // Streaming: the message shows text while it is still `streaming`.
    await waitAssistant(page, { status: 'streaming', minLength: 1, timeout: 60_000 });
    await page.waitForFunction(
      (s) => ['complete', 'failed'].includes(document.querySelector(s)?.dataset.status),
      sel.assistant,
      { timeout: 60_000, polling: 50 },
    );
    const [reply] = (await messages(page)).filter((m) => m.role === 'assistant');
    assert.ok(reply.text.trim().length > 0, 'the reply has text');
    const id = decodeURIComponent(new URL(page.url()).pathname.slice('/c/'.length));
    const stored = await storedMessage(context, id, reply.id);
    assert.equal(stored.text, reply.text, 'the page shows what was stored');
    if (reply.status === 'failed') {
      // 48 tokens may cut the answer: then the message says why, and keeps the text.
      assert.match(await page.locator(`${sel.assistant} .note`).innerText(), /token limit/);
    } else {
      assert.equal(reply.status, 'complete');
    }
  });
}

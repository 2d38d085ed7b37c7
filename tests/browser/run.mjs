// Runs the browser suite: checks that Chromium, the chatwire binary and playwright-core are
// there, then runs every scenarios/*.test.mjs with node's test runner (TAP, so CI tools read
// its `# pass N` / `# fail N`), and ends with one plain line: `browser: N passed, M failed`.
//
//   node run.mjs                 every scenario
//   node run.mjs streaming       only files whose name contains "streaming"
//
// No Chromium: a loud skip (exit 0) — except in CI (CI=true), where it is a failure.

import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { BIN } from './lib/server.mjs';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const CHROMIUM = process.env.CHATWIRE_CHROMIUM || '/usr/bin/chromium';
const inCi = /^(1|true|yes)$/i.test(process.env.CI || '');

function banner(lines) {
  const bar = '!'.repeat(72);
  console.log(`\n${bar}\n${lines.map((l) => `!!  ${l}`).join('\n')}\n${bar}\n`);
}

if (!existsSync(CHROMIUM)) {
  if (inCi) {
    banner([`BROWSER TESTS FAILED: no Chromium at ${CHROMIUM} (CI=true: a missing browser is a failure)`,
      'Install it: apt-get update && apt-get install -y chromium']);
    console.log('browser: 0 passed, 1 failed');
    process.exit(1);
  }
  banner([`BROWSER TESTS SKIPPED: no Chromium at ${CHROMIUM}`,
    'Install it to run them: apt-get update && apt-get install -y chromium',
    '(or point CHATWIRE_CHROMIUM at a Chromium binary)']);
  process.exit(0);
}
if (!existsSync(join(HERE, 'node_modules', 'playwright-core'))) {
  console.error(`browser tests: playwright-core is missing: run \`npm ci\` in ${HERE}`);
  console.log('browser: 0 passed, 1 failed');
  process.exit(1);
}
if (!existsSync(BIN)) {
  console.error(`browser tests: no chatwire binary at ${BIN}: run \`cargo build\` first`);
  console.log('browser: 0 passed, 1 failed');
  process.exit(1);
}

const filters = process.argv.slice(2);
const dir = join(HERE, 'scenarios');
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.test.mjs'))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort()
  .map((f) => join(dir, f));
if (files.length === 0) {
  console.error(`browser tests: no scenario file matches ${filters.join(' ')}`);
  process.exit(1);
}

const started = Date.now();
// One file at a time: the machine is small and the scenarios watch timing.
const child = spawn(
  process.execPath,
  ['--test', '--test-reporter=tap', '--test-concurrency=1', ...files],
  { cwd: HERE, stdio: ['ignore', 'pipe', 'inherit'] },
);

let pass = null;
let fail = null;
let buffered = '';
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  buffered += chunk.toString();
  const lines = buffered.split('\n');
  buffered = lines.pop();
  for (const line of lines) {
    const m = /^# (pass|fail) (\d+)$/.exec(line.trim());
    if (m && m[1] === 'pass') pass = Number(m[2]);
    if (m && m[1] === 'fail') fail = Number(m[2]);
  }
});

child.on('exit', (code, signal) => {
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  const ok = code === 0 && fail === 0 && pass > 0;
  console.log(`\nbrowser suite took ${secs} s (${files.length} files)`);
  console.log(`browser: ${pass ?? 0} passed, ${fail ?? (ok ? 0 : 1)} failed`);
  if (!ok && signal) console.error(`browser tests: the test runner was killed by ${signal}`);
  process.exit(ok ? 0 : 1);
});

// A real chatwire server for one scenario: the debug binary on a free 127.0.0.1 port,
// started and stopped by the test. Each scenario gets its own, so scenarios never share
// state and can fail independently. `restart()` stops the process and starts a new one on
// the same port and database (the "network path goes away" scenario).

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
export const BIN = process.env.CHATWIRE_BIN || join(REPO_ROOT, 'target', 'debug', 'chatwire');

const READY_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 8_000;
const LOG_LINES_KEPT = 200;

/** A port that was free a moment ago (the kernel picks it; we close and hand it on). */
export function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class ChatServer {
  /**
   * @param {object} opts
   * @param {number} [opts.delayMs] the offline bot's pause between words
   * @param {boolean} [opts.fileDb] keep conversations in a SQLite file (survives restart)
   * @param {string[]} [opts.args] extra command-line options
   */
  static async start(opts = {}) {
    if (!existsSync(BIN)) {
      throw new Error(`chatwire binary not found at ${BIN}: run \`cargo build\` first`);
    }
    const s = new ChatServer(opts);
    s.port = await freePort();
    if (opts.fileDb) {
      s.dir = mkdtempSync(join(tmpdir(), 'chatwire-browser-'));
      s.db = `sqlite://${join(s.dir, 'chat.db')}`;
    }
    await s.launch();
    return s;
  }

  constructor(opts) {
    this.opts = opts;
    this.db = 'sqlite::memory:';
    this.dir = null;
    this.proc = null;
    this.exited = null;
    this.log = [];
  }

  get base() {
    return `http://127.0.0.1:${this.port}`;
  }

  url(path) {
    return this.base + path;
  }

  /** The server's last log lines, for a failing test's diagnostics. */
  tail(n = 40) {
    return this.log.slice(-n).join('\n');
  }

  keep(chunk) {
    for (const line of chunk.toString().split('\n')) {
      if (!line) continue;
      this.log.push(line);
      if (this.log.length > LOG_LINES_KEPT) this.log.shift();
    }
  }

  async launch() {
    const args = [
      '--addr', `127.0.0.1:${this.port}`,
      '--db', this.db,
      '--offline-delay-ms', String(this.opts.delayMs ?? 10),
      '--shutdown-secs', '2',
      ...(this.opts.args || []),
    ];
    const proc = spawn(BIN, args, {
      cwd: this.dir || REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info', NO_COLOR: '1' },
    });
    this.proc = proc;
    this.exited = new Promise((r) => proc.once('exit', (code, signal) => r({ code, signal })));
    proc.stdout.on('data', (c) => this.keep(c));
    proc.stderr.on('data', (c) => this.keep(c));
    await this.waitReady();
  }

  async waitReady() {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let exit = null;
    this.exited.then((e) => { exit = e; });
    while (Date.now() < deadline) {
      if (exit) {
        throw new Error(`chatwire exited during start-up (${JSON.stringify(exit)}):\n${this.tail()}`);
      }
      try {
        const res = await fetch(this.url('/healthz'), { signal: AbortSignal.timeout(1000) });
        if (res.ok) return;
      } catch {
        // Not listening yet.
      }
      await sleep(50);
    }
    throw new Error(`chatwire not ready within ${READY_TIMEOUT_MS} ms:\n${this.tail()}`);
  }

  /** Stops the process: SIGTERM (graceful), then SIGKILL if it lingers. */
  async kill() {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill('SIGTERM');
    let timer;
    const late = new Promise((r) => { timer = setTimeout(() => r(null), STOP_TIMEOUT_MS); });
    const done = await Promise.race([this.exited, late]);
    clearTimeout(timer);
    if (!done) {
      proc.kill('SIGKILL');
      await this.exited;
    }
  }

  /** A new process on the same port and database. */
  async restart() {
    await this.kill();
    await this.launch();
  }

  async stop() {
    await this.kill();
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}

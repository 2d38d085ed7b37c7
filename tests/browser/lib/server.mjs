// A real chatwire server for one scenario: the debug binary on 127.0.0.1, started and
// stopped by the test. It binds port 0 and we read the port it got from its
// `chatwire is listening on http://ADDR` line, so no port is picked here and handed on
// (another process could take it in between). Each scenario gets its own server, so
// scenarios never share state and can fail independently. `restart()` stops the process
// and starts a new one on the same port and database (the "network path goes away"
// scenario; the port is free again once the old process has exited).

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
export const BIN = process.env.CHATWIRE_BIN || join(REPO_ROOT, 'target', 'debug', 'chatwire');

const READY_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 8_000;
const LOG_LINES_KEPT = 200;


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
    this.port = 0; // until the first start says which port it got
    this.onLine = null;
    this.partial = { out: '', err: '' };
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

  /** Takes a chunk of the process's output (`from`: 'out' or 'err'); lines may arrive
   * in pieces, so the unfinished end waits for the next chunk. */
  keep(chunk, from) {
    const lines = (this.partial[from] + chunk.toString()).split('\n');
    this.partial[from] = lines.pop();
    for (const line of lines) {
      if (!line) continue;
      this.onLine?.(line);
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
    this.partial = { out: '', err: '' };
    this.exited = new Promise((r) => proc.once('exit', (code, signal) => r({ code, signal })));
    const listening = this.listening();
    proc.stdout.on('data', (c) => this.keep(c, 'out'));
    proc.stderr.on('data', (c) => this.keep(c, 'err'));
    this.port = await listening;
  }

  /** The port from the `chatwire is listening on http://ADDR` line (printed once the
   * server accepts connections); fails if the process exits or stays silent too long. */
  listening() {
    return new Promise((ok, fail) => {
      const timer = setTimeout(() => {
        this.onLine = null;
        fail(new Error(`chatwire not ready within ${READY_TIMEOUT_MS} ms:\n${this.tail()}`));
      }, READY_TIMEOUT_MS);
      this.exited.then((e) => {
        clearTimeout(timer);
        fail(new Error(`chatwire exited during start-up (${JSON.stringify(e)}):\n${this.tail()}`));
      });
      this.onLine = (line) => {
        const m = /chatwire is listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(line);
        if (!m) return;
        clearTimeout(timer);
        this.onLine = null;
        ok(Number(m[1]));
      };
    });
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

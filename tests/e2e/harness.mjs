// Starts the real stack for a browser test: the backend binary on a fresh SQLite file, the
// project's nginx config (frontend/nginx/default.conf) in front of it, and headless Chromium.
// Only addresses change for the test (scripts/testkit/native.py renders the config): nginx
// listens on a free loopback port instead of 8080, finds the backend on 127.0.0.1 instead of
// the compose service name, and serves the UI from the repository.

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, '..', '..');
export const ARTIFACTS = path.join(ROOT, 'artifacts', 'e2e');
// The release build, where cargo puts it: target/<host triple>/release (.cargo/config.toml).
const BINARY = process.env.BOOKSTORE_BIN
  ?? path.join(ROOT, 'target', execFileSync('rustc', ['--print', 'host-tuple'], { encoding: 'utf8' }).trim(),
    'release', 'bookstore');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const NGINX = process.env.NGINX ?? '/usr/sbin/nginx';
// The operator token the test backends start with (BOOKSTORE_ADMIN_TOKEN): a test value.
export const OPERATOR_TOKEN = 'operator-token-of-the-browser-tests';
const CHANGES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

// `headers` plus the operator token for a change (a script's credential), unless `headers`
// already carries one or `token` is null.
export function withCredential(method = 'GET', headers = {}, token = OPERATOR_TOKEN) {
  if (!token || !CHANGES.has(method) || Object.keys(headers).some((h) => h.toLowerCase() === 'authorization')) {
    return headers;
  }
  return { ...headers, Authorization: `Bearer ${token}` };
}

export async function freePort() {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

// Polls `url` until it answers `status`.
export async function waitFor(url, { status = 200, timeoutMs = 20000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    try {
      const response = await fetch(url);
      if (response.status === status) return;
      last = response.status;
    } catch (error) {
      last = error.message;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${url} did not answer ${status} in time (last: ${last})`);
}

class Backend {
  constructor(dir, port, { demoData = false, sessionTtl = '12h' } = {}) {
    this.dir = dir;
    this.port = port;
    this.demoData = demoData;
    this.sessionTtl = sessionTtl;
    this.process = null;
  }

  async start() {
    this.process = spawn(BINARY, [
      '--addr', `127.0.0.1:${this.port}`,
      '--database-url', `sqlite://${path.join(this.dir, 'bookstore.db')}`,
      '--demo-data', String(this.demoData),
      '--static-dir', '',
      '--session-ttl', this.sessionTtl,
      // nginx, in front, is on loopback: its X-Forwarded-For names the browser.
      '--trusted-proxies', '127.0.0.1',
    ], {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, RUST_LOG: 'warn', BOOKSTORE_ADMIN_TOKEN: OPERATOR_TOKEN },
    });
    await waitFor(`http://127.0.0.1:${this.port}/readyz`);
  }

  // A hung process, for real: SIGSTOP; `thaw` sends SIGCONT.
  freeze() {
    this.process.kill('SIGSTOP');
  }

  thaw() {
    this.process.kill('SIGCONT');
  }

  // As `docker compose stop` does: SIGTERM, then wait for the exit.
  async stop() {
    if (!this.process || this.process.exitCode !== null) return;
    const exited = once(this.process, 'exit');
    this.process.kill('SIGTERM');
    await exited;
  }
}

class Nginx {
  // `tls`: { port, chain, key } to serve HTTPS on `port` too (plain HTTP then redirects).
  constructor(dir, port, backendPort, tls = null) {
    this.dir = dir;
    this.port = port;
    this.backendPort = backendPort;
    this.tls = tls;
  }

  async start() {
    // The one renderer of the native configuration (shared with the drill and the monitoring
    // tests): it fails loudly if the project's config no longer has what it replaces.
    const rendered = spawnSync('python3', [
      path.join(ROOT, 'scripts', 'testkit', 'native.py'), 'nginx',
      '--dir', this.dir, '--listen', String(this.port), '--backend', `127.0.0.1:${this.backendPort}`,
      ...(this.tls ? ['--https', String(this.tls.port), '--cert', this.tls.chain, '--key', this.tls.key] : []),
    ], { encoding: 'utf8' });
    if (rendered.status !== 0) throw new Error(`rendering the nginx config failed: ${rendered.stderr}`);
    const config = rendered.stdout.trim();
    this.process = spawn(NGINX, ['-c', config, '-e', path.join(this.dir, 'nginx-error.log')], {
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    await waitFor(`http://127.0.0.1:${this.port}/_nginx/health`);
  }

  async stop() {
    if (!this.process || this.process.exitCode !== null) return;
    const exited = once(this.process, 'exit');
    this.process.kill('SIGQUIT');
    await exited;
  }
}

// The backend alone, on a fresh database: `{ url, stop() }`.
export async function startBackend() {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'bookstore-api-'));
  const backend = new Backend(dir, await freePort());
  await backend.start();
  return {
    url: `http://127.0.0.1:${backend.port}`,
    async stop() {
      await backend.stop();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

// A certificate for `localhost` from a throwaway CA (scripts/testkit/tls.py), and the
// SHA-256 of its public key, which Chromium is told to accept (and nothing else unknown).
function throwawayCertificate(dir) {
  const made = spawnSync('python3', [path.join(ROOT, 'scripts', 'testkit', 'tls.py'), path.join(dir, 'tls'), 'localhost'],
    { encoding: 'utf8' });
  if (made.status !== 0) throw new Error(`making a certificate failed: ${made.stderr}`);
  const [ca, chain, key] = made.stdout.trim().split(' ');
  const spki = spawnSync('sh', ['-c',
    'openssl pkey -in "$1" -pubout -outform der | openssl dgst -sha256 -binary | base64', 'spki', key],
  { encoding: 'utf8' });
  if (spki.status !== 0) throw new Error(`hashing the key failed: ${spki.stderr}`);
  return { ca, chain, key, spki: spki.stdout.trim() };
}

// The whole stack. `stack.base` is the UI's origin (nginx); `stack.api(path, init)` calls
// the API through nginx, as the page does. With `https`, nginx serves the UI over HTTPS with
// a throwaway certificate that Chromium accepts, and `stack.base` is https://localhost:PORT
// (`stack.api` then reaches the API over plain HTTP from loopback, redirected: use the page).
export async function startStack({ demoData = false, sessionTtl, https = false } = {}) {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'bookstore-e2e-'));
  const backend = new Backend(dir, await freePort(), { demoData, sessionTtl });
  await backend.start();
  const certificate = https ? { ...throwawayCertificate(dir), port: await freePort() } : null;
  const nginx = new Nginx(dir, await freePort(), backend.port, certificate);
  await nginx.start();
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync',
      ...(certificate ? [`--ignore-certificate-errors-spki-list=${certificate.spki}`] : [])],
  });
  await fs.mkdir(ARTIFACTS, { recursive: true });
  const base = certificate ? `https://localhost:${certificate.port}` : `http://127.0.0.1:${nginx.port}`;
  return {
    base,
    // nginx's plain-HTTP address (with `https`, it redirects to `base`).
    plainBase: `http://localhost:${nginx.port}`,
    backend,
    browser,
    // Changes carry the operator token unless `init.headers` has an Authorization of its
    // own or `init.token` is null.
    async api(pathname, { token, ...init } = {}) {
      let headers = init.body ? { 'Content-Type': 'application/json', ...init.headers } : { ...init.headers };
      headers = withCredential(init.method, headers, token === undefined ? OPERATOR_TOKEN : token);
      return fetch(`${base}${pathname}`, { ...init, headers });
    },
    // A request to nginx from another loopback address (127.0.0.2), which nginx treats as a
    // client from elsewhere (rate limits apply): { status, headers, body }.
    async fromElsewhere(method, pathname, { body, headers = {} } = {}) {
      const { request } = await import('node:http');
      return new Promise((resolve, reject) => {
        const req = request({
          host: '127.0.0.1', port: nginx.port, path: pathname, method, localAddress: '127.0.0.2',
          headers: withCredential(method, body ? { 'Content-Type': 'application/json', ...headers } : headers),
        }, (res) => {
          let data = '';
          res.setEncoding('utf8');
          res.on('data', (chunk) => { data += chunk; });
          res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: data }));
        });
        req.on('error', reject);
        req.end(body);
      });
    },
    // A new API token made as an operator would: `bookstore token create` on the database.
    createToken(name, { readOnly = false } = {}) {
      const made = spawnSync(BINARY, [
        'token', 'create', '--name', name, ...(readOnly ? ['--read-only'] : []),
        '--database-url', `sqlite://${path.join(dir, 'bookstore.db')}`,
      ], { encoding: 'utf8' });
      if (made.status !== 0) throw new Error(`bookstore token create: ${made.stderr}`);
      return made.stdout.trim();
    },
    // Books written straight into the database (the API takes one at a time, which is too
    // slow for a catalogue past the offset cap); its triggers keep indexes and counts.
    insertBooks(books) {
      const script = [
        'import json, sqlite3, sys',
        'db = sqlite3.connect(sys.argv[1], timeout=30)',
        'rows = [(b["title"], b["author"], b["year"], b.get("genre"), b["title"].lower(), b["author"].lower(),',
        '         (b.get("genre") or "").lower() or None) for b in json.load(sys.stdin)]',
        'with db:',
        '    db.executemany("INSERT INTO books (title, author, year, genre, created_at, updated_at, title_key, "',
        '                   "author_key, genre_key) VALUES (?, ?, ?, ?, \'2026-11-25T10:00:00Z\', "',
        '                   "\'2026-11-25T10:00:00Z\', ?, ?, ?)", rows)',
      ].join('\n');
      const done = spawnSync('python3', ['-c', script, path.join(dir, 'bookstore.db')], {
        input: JSON.stringify(books), encoding: 'utf8',
      });
      if (done.status !== 0) throw new Error(`inserting books: ${done.stderr}`);
    },
    async addBook(book) {
      const response = await this.api('/books', { method: 'POST', body: JSON.stringify(book) });
      if (response.status !== 201) throw new Error(`creating ${JSON.stringify(book)}: ${response.status}`);
      return response.json();
    },
    // A page that records console errors and uncaught exceptions, signed in (its browser
    // holds a session cookie made from the operator token, as signing in through the UI
    // makes) unless `signedIn` is false.
    async page({ signedIn = true, ...options } = {}) {
      const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...options });
      if (signedIn) {
        const answer = await context.request.post(`${base}/session`, {
          data: { token: OPERATOR_TOKEN }, headers: { Origin: base },
        });
        if (answer.status() !== 200) throw new Error(`signing the test browser in: ${answer.status()}`);
      }
      const page = await context.newPage();
      page.problems = [];
      page.on('console', (message) => {
        if (message.type() === 'error') page.problems.push(`console: ${message.text()}`);
      });
      page.on('pageerror', (error) => page.problems.push(`exception: ${error.message}`));
      return page;
    },
    async screenshot(page, name) {
      await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
    },
    async close() {
      await browser.close();
      await nginx.stop();
      await backend.stop();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

// Shared by the browser tests and the dashboard benchmark: the release binaries,
// a server on 127.0.0.1, and headless Debian Chromium driven by playwright-core
// (both installed by scripts/test.sh; missing ones fail loudly here).
import { spawn, execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const bin = join(root, 'target/release/perfstats');
export const network = join(root, 'target/release/examples/network');
const playwrightPath = join(root, 'target/tools/node/node_modules/playwright-core/index.mjs');
const chromiumPath = process.env.PERFSTATS_CHROMIUM || '/usr/bin/chromium';

for (const [path, how] of [[bin, 'cargo build --release'], [network, 'cargo build --release --examples'],
  [playwrightPath, 'scripts/test.sh (npm playwright-core)'], [chromiumPath, 'scripts/test.sh (apt chromium)']]) {
  if (!existsSync(path)) throw new Error(`${path} is missing: run ${how}`);
}

/** How long a server may take to print its address, and to exit after SIGTERM. */
const START_DEADLINE_MS = 20000;
const STOP_DEADLINE_MS = 5000;

/** Starts `perfstats serve ARGS` and resolves with its child process and URL. */
export function startServer(args) {
  const child = spawn(bin, ['serve', ...args], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, RUST_LOG: 'warn' } });
  return new Promise((resolveStart, reject) => {
    let text = '';
    const deadline = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`perfstats serve ${args.join(' ')} printed no address within ${START_DEADLINE_MS} ms (stdout: ${JSON.stringify(text)})`));
    }, START_DEADLINE_MS);
    child.stdout.on('data', (chunk) => {
      text += chunk;
      const match = text.match(/http:\/\/[0-9.:]+/);
      if (match) {
        clearTimeout(deadline);
        resolveStart({ child, url: match[0] });
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(deadline);
      reject(new Error(`perfstats serve ${args.join(' ')} exited with ${code ?? signal} before printing its address`));
    });
  });
}

/** Stops a server with SIGTERM; fails unless it exits with code 0 within the deadline. */
export function stopServer(server) {
  const { child } = server;
  child.removeAllListeners('exit');
  if (child.exitCode !== null || child.signalCode !== null) {
    return child.exitCode === 0 ? Promise.resolve()
      : Promise.reject(new Error(`perfstats serve had already exited with ${child.exitCode ?? child.signalCode}`));
  }
  return new Promise((done, fail) => {
    const deadline = setTimeout(() => {
      child.kill('SIGKILL');
      fail(new Error(`perfstats serve did not exit within ${STOP_DEADLINE_MS} ms of SIGTERM (killed)`));
    }, STOP_DEADLINE_MS);
    child.on('exit', (code, signal) => {
      clearTimeout(deadline);
      if (code === 0) done();
      else fail(new Error(`perfstats serve exited with ${code ?? signal} on SIGTERM, expected 0`));
    });
    child.kill('SIGTERM');
  });
}

const run = promisify(execFile);

/** Reports one event over gRPC with the CLI; resolves with the ACK's time (ms). */
export async function report(url, sender, event, message) {
  const { stdout } = await run(bin, ['report', '--addr', url, '--sender', sender, '--event', event, '--message', message]);
  if (!stdout.startsWith('seq=')) throw new Error(`no ACK: ${stdout}`);
  return Date.now();
}

/** Reports one event through the legacy form endpoint (`time` in ns, 0: now). */
export async function send(url, sender, eventtype, message, time = 0) {
  const response = await fetch(`${url}/send`, {
    method: 'POST', body: new URLSearchParams({ time: String(time), sender, eventtype, message }),
  });
  const text = await response.text();
  if (!response.ok || text.trim() !== 'ACK') throw new Error(`POST /send: ${response.status} ${text}`);
}

/** Starts a new run (which becomes current) with `labels` and resolves with its info. */
export async function newRun(url, name, labels = {}) {
  const response = await fetch(`${url}/api/runs`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, labels }),
  });
  if (!response.ok) throw new Error(`POST /api/runs: ${response.status} ${await response.text()}`);
  return response.json();
}

/**
 * Runs the simulated seven-node network for `rounds` block rounds with a fixed
 * seed, as fast as the server takes them (pace 0: batched, ending about now),
 * with `lightDelayMs` more block latency on the light nodes.
 */
export async function simulate(url, rounds, seed = 7, lightDelayMs = 0) {
  await run(network, [url, String(rounds), '0', String(seed), String(lightDelayMs)], { maxBuffer: 1 << 20 });
}

export async function launch() {
  const { chromium } = await import(pathToFileURL(playwrightPath));
  return chromium.launch({
    executablePath: chromiumPath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
}

/** Awaits `promise`, failing with `what` (and the cause) if it rejects or times out. */
export async function waitFor(what, promise) {
  try {
    return await promise;
  } catch (error) {
    throw new Error(`waiting for ${what}: ${error.message.split('\n')[0]}`);
  }
}

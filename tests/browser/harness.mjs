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

/** Starts `perfstats serve ARGS` and resolves with its child process and URL. */
export function startServer(args) {
  const child = spawn(bin, ['serve', ...args], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, RUST_LOG: 'warn' } });
  return new Promise((resolveStart, reject) => {
    let text = '';
    child.stdout.on('data', (chunk) => {
      text += chunk;
      const match = text.match(/http:\/\/[0-9.:]+/);
      if (match) resolveStart({ child, url: match[0] });
    });
    child.on('exit', (code) => reject(new Error(`perfstats serve exited with ${code}`)));
  });
}

/** Stops a server with SIGTERM and waits for it to exit. */
export function stopServer(server) {
  return new Promise((done) => {
    server.child.removeAllListeners('exit');
    server.child.on('exit', done);
    server.child.kill('SIGTERM');
  });
}

const run = promisify(execFile);

/** Reports one event over gRPC with the CLI; resolves with the ACK's time (ms). */
export async function report(url, sender, event, message) {
  const { stdout } = await run(bin, ['report', '--addr', url, '--sender', sender, '--event', event, '--message', message]);
  if (!stdout.startsWith('seq=')) throw new Error(`no ACK: ${stdout}`);
  return Date.now();
}

/** Runs the simulated seven-node network for `rounds` block rounds. */
export async function simulate(url, rounds) {
  await run(network, [url, String(rounds), '0'], { maxBuffer: 1 << 20 });
}

export async function launch() {
  const { chromium } = await import(pathToFileURL(playwrightPath));
  return chromium.launch({
    executablePath: chromiumPath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
}

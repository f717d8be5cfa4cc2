// Security in a real browser (headless Chromium against the real server): pages of
// other origins cannot write, a rebinding name cannot read, the dashboard works on
// 127.0.0.1, localhost and over https with a test CA.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { bin, root, send, startServer, stopServer, waitFor } from './harness.mjs';

const run = promisify(execFile);
const WAIT = { timeout: 10000 };
const certsExample = join(root, 'target/release/examples/test_certs');
const playwrightPath = join(root, 'target/tools/node/node_modules/playwright-core/index.mjs');
const chromiumPath = process.env.PERFSTATS_CHROMIUM || '/usr/bin/chromium';
const dir = mkdtempSync(join(tmpdir(), 'perfstats-security-'));

/** Headless Chromium as the harness launches it, with `extra` flags. */
async function launchWith(extra) {
  const { chromium } = await import(pathToFileURL(playwrightPath));
  return chromium.launch({
    executablePath: chromiumPath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', ...extra],
  });
}

/** `perfstats serve ARGS` printing an https:// address (the harness's startServer expects http://). */
function startTlsServer(args) {
  const child = spawn(bin, ['serve', ...args], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, RUST_LOG: 'warn' } });
  return new Promise((resolveStart, reject) => {
    let text = '';
    const deadline = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`no address: ${text}`)); }, 20000);
    child.stdout.on('data', (chunk) => {
      text += chunk;
      const match = text.match(/https:\/\/[0-9.:]+/);
      if (match) { clearTimeout(deadline); resolveStart({ child, url: match[0] }); }
    });
    child.on('exit', (code, signal) => { clearTimeout(deadline); reject(new Error(`exited with ${code ?? signal}`)); });
  });
}

/** The metrics' count of refusals for `reason`. */
async function refusals(url, reason, init) {
  const text = await (await fetch(`${url}/metrics`, init)).text();
  const match = text.match(new RegExp(`perfstats_rejected_total\\{reason="${reason}"\\} (\\d+)`));
  return match ? Number(match[1]) : 0;
}

async function until(what, check, ms = 10000) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

let server;
let browser;
const others = [];

before(async () => {
  server = await startServer(['--listen', '127.0.0.1:0', '--memory']);
  await send(server.url, '1f', 'Event_NewBlockReceived', 'block 1');
  browser = await launchWith(['--host-resolver-rules=MAP evil.example 127.0.0.1, MAP perfstats.test 127.0.0.1']);
});

after(async () => {
  await browser?.close();
  for (const other of others) other.close();
  if (server) await stopServer(server);
});

/** A page of another origin (another loopback port) that attacks `target`. */
async function attacker(target) {
  const page = `<!doctype html><title>cat pictures</title>
<iframe name="sink"></iframe>
<form id="forged" method="POST" action="${target}/send" target="sink">
  <input name="time" value="0"><input name="sender" value="forged-form">
  <input name="eventtype" value="Event_NewBlockReceived"><input name="message" value="form">
</form>
<script>
  fetch(${JSON.stringify(`${target}/send`)}, { mode: 'no-cors', method: 'POST',
    body: new URLSearchParams({ time: '0', sender: 'forged-fetch', eventtype: 'Event_NewBlockReceived', message: 'fetch' }) })
    .finally(() => { document.title = 'fetched'; });
  fetch(${JSON.stringify(`${target}/api/runs`)}, { mode: 'no-cors', method: 'POST', body: '{"name": "forged"}' });
  document.getElementById('forged').submit();
</script>`;
  const http = createServer((request, response) => {
    response.setHeader('content-type', 'text/html');
    response.end(page);
  });
  others.push(http);
  await new Promise((resolve) => http.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${http.address().port}/`;
}

test('a page of another origin cannot write: hidden form and no-cors fetch store nothing', async () => {
  const before = await refusals(server.url, 'cross_origin');
  const page = await browser.newPage();
  await page.goto(await attacker(server.url));
  await waitFor('the no-cors fetch', page.waitForFunction(() => document.title === 'fetched', null, WAIT));
  // All three requests reached the server and were refused (not merely never sent).
  await until('three cross-origin refusals', async () => (await refusals(server.url, 'cross_origin')) >= before + 3);
  const frame = page.frame({ name: 'sink' });
  await waitFor('the form answer', frame.waitForFunction(() => document.body?.innerText.includes('cross-origin'), null, WAIT));
  const reports = await (await fetch(`${server.url}/api/reports`)).json();
  assert.deepEqual(reports.reports.map((report) => report.sender), ['1f'], 'nothing forged was stored');
  const runs = await (await fetch(`${server.url}/api/runs`)).json();
  assert.equal(runs.length, 1, 'no run was started');
  await page.close();
});

/**
 * Opens the dashboard at `base`, checks it is live, sends a report, starts a run from
 * its button; resolves with the HTTP version the page was loaded over.
 */
async function dashboardWorks(base, sendReport, runName, context = browser) {
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (error) => problems.push(error.message));
  page.on('console', (message) => { if (message.type() === 'error') problems.push(message.text()); });
  page.on('dialog', (dialog) => dialog.accept(runName));
  const response = await page.goto(`${base}/`);
  assert.equal(response.status(), 200, `${base}/`);
  await waitFor(`the live stream at ${base}`, page.waitForSelector('#status.online', WAIT));
  const message = `live at ${base}`;
  await sendReport(message);
  await waitFor(`"${message}" in the log`, page.waitForFunction(
    (wanted) => [...document.querySelectorAll('#log tbody td.message')].some((cell) => cell.textContent === wanted),
    message, WAIT));
  await waitFor(`the nodes table at ${base}`, page.waitForSelector('#nodes tbody tr', WAIT));
  // The page's own write (POST /api/runs with its Origin) goes through.
  await page.click('#new-run');
  await waitFor('the new run in the picker', page.waitForFunction(
    (name) => [...document.querySelectorAll('option')].some((option) => option.textContent.startsWith(name)), runName, WAIT));
  assert.deepEqual(problems, [], `no errors at ${base}`);
  const protocol = await page.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol);
  await page.close();
  return protocol;
}

test('the dashboard works fully on 127.0.0.1 and on localhost', async () => {
  const port = new URL(server.url).port;
  for (const [base, name] of [[server.url, 'by-ip'], [`http://localhost:${port}`, 'by-localhost']]) {
    const protocol = await dashboardWorks(base, (message) => send(server.url, '2f', 'Event_NewBlockReceived', message), name);
    assert.equal(protocol, 'http/1.1');
  }
  const runs = await (await fetch(`${server.url}/api/runs`)).json();
  assert.deepEqual(runs.map((run) => run.name).sort(), ['by-ip', 'by-localhost', 'run-1']);
});

test('a rebinding name is refused in the browser, and served once allowed', async () => {
  const port = new URL(server.url).port;
  const before = await refusals(server.url, 'host');
  const page = await browser.newPage();
  // evil.example resolves to 127.0.0.1 in this browser: what a rebinding attack achieves.
  const response = await page.goto(`http://evil.example:${port}/`);
  assert.equal(response.status(), 403);
  const body = await page.innerText('body');
  assert.match(body, /evil\.example/);
  assert.match(body, /--allow-host evil\.example/);
  // Its script's same-origin reads carry no Origin and no Sec-Fetch-* over plain HTTP
  // (run here in the refused page, which is of the rebinding origin).
  const statuses = await page.evaluate(async () => {
    const reports = await fetch('/api/reports');
    const stream = await new Promise((resolve) => {
      const source = new EventSource('/api/stream');
      source.onopen = () => { source.close(); resolve('open'); };
      source.onerror = () => { source.close(); resolve('error'); };
    });
    return { reports: reports.status, stream };
  });
  assert.deepEqual(statuses, { reports: 403, stream: 'error' });
  assert.ok((await refusals(server.url, 'host')) >= before + 3, 'page, fetch and EventSource refused for their Host');
  await page.close();

  const allowed = await startServer(['--listen', '127.0.0.1:0', '--memory', '--allow-host', 'perfstats.test']);
  try {
    await send(allowed.url, '1f', 'Event_NewBlockReceived', 'block 1');
    const allowedPort = new URL(allowed.url).port;
    await dashboardWorks(`http://perfstats.test:${allowedPort}`,
      (message) => send(allowed.url, '3f', 'Event_NewBlockReceived', message), 'by-name');
  } finally {
    await stopServer(allowed);
  }
});

test('the dashboard loads and works over https with the test CA', async () => {
  await run(certsExample, [dir]);
  const cert = join(dir, 'server.pem');
  const tls = await startTlsServer(['--listen', '127.0.0.1:0', '--memory', '--tls-cert', cert, '--tls-key', join(dir, 'server.key')]);
  // Chromium trusts this one key (the server's), not the whole machine's store: the
  // page is still fetched and rendered over real TLS, with every request checked.
  const spki = new X509Certificate(readFileSync(cert)).publicKey.export({ type: 'spki', format: 'der' });
  const pin = createHash('sha256').update(spki).digest('base64');
  const secure = await launchWith([`--ignore-certificate-errors-spki-list=${pin}`]);
  try {
    const ca = join(dir, 'ca.pem');
    const report = async (message) => {
      const { stdout } = await run(bin, ['report', '--addr', tls.url, '--ca', ca, '--sender', '1f', '--event', 'new-block-received', '--message', message]);
      assert.match(stdout, /^seq=/);
    };
    await report('first over tls');
    const port = new URL(tls.url).port;
    // HTTP/2 (ALPN h2): the page's POST /api/runs names its host in :authority only.
    assert.equal(await dashboardWorks(tls.url, report, 'tls-by-ip', secure), 'h2');
    assert.equal(await dashboardWorks(`https://localhost:${port}`, report, 'tls-by-localhost', secure), 'h2');
    const runs = await run(bin, ['runs', '--addr', tls.url, '--ca', ca]);
    assert.match(runs.stdout, /tls-by-localhost/);
    // Without the pin the certificate is refused: the pin is what makes it load.
    const plain = await browser.newPage();
    await assert.rejects(plain.goto(`${tls.url}/`), /ERR_CERT_AUTHORITY_INVALID/);
    await plain.close();
    // A plaintext visit is told to use https.
    const clear = await browser.newPage();
    const answer = await clear.goto(tls.url.replace('https://', 'http://') + '/');
    assert.equal(answer.status(), 400);
    assert.match(await clear.innerText('body'), /requires TLS/);
    await clear.close();
  } finally {
    await secure.close();
    await stopServer(tls);
  }
});

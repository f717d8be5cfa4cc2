// The dashboard in a real browser: headless Chromium against a real server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launch, report, root, simulate, startServer, stopServer } from './harness.mjs';

const db = join(mkdtempSync(join(tmpdir(), 'perfstats-browser-')), 'dash.db');
let server;
let browser;
let page;
const problems = [];
let dialogs = 0;

const logText = () => page.locator('#log tbody').innerText();
const waitForLog = (text) => page.waitForFunction(
  (wanted) => [...document.querySelectorAll('#log tbody td.message')].some((cell) => cell.textContent === wanted),
  text, { timeout: 10000 });

before(async () => {
  server = await startServer(['--listen', '127.0.0.1:0', '--db', db]);
  await simulate(server.url, 6);
  browser = await launch();
  page = await browser.newPage({ viewport: { width: 1400, height: 1700 }, acceptDownloads: true });
  page.on('console', (message) => { if (message.type() === 'error') problems.push(message.text()); });
  page.on('pageerror', (error) => problems.push(error.message));
  page.on('dialog', async (dialog) => { dialogs += 1; await dialog.dismiss(); });
  await page.goto(`${server.url}/`);
});

after(async () => {
  await browser?.close();
  if (server) await stopServer(server);
});

test('the page loads with a populated overview and no console errors', async () => {
  await page.waitForFunction(() => document.querySelectorAll('#nodes tbody tr').length === 7);
  await page.waitForFunction(() => document.querySelectorAll('#log tbody tr').length === 100);
  const headline = await page.locator('#headline').innerText();
  assert.match(headline, /slowest sync: 3f/);
  assert.match(headline, /5l missed block 122/);
  assert.match(headline, /winner disagreement in round 3/);
  assert.equal(await page.locator('#rounds tbody tr.bad').count(), 1, 'one round with a missing node');
  assert.equal(await page.locator('#winners tbody tr.bad').count(), 1, 'one disagreeing round');
  await page.waitForSelector('#status.online');
  mkdirSync(join(root, 'target/shots'), { recursive: true });
  await page.screenshot({ path: join(root, 'target/shots/dashboard.png') });
  assert.deepEqual(problems, []);
});

test('a report sent over gRPC appears without a reload', async () => {
  await report(server.url, '2f', 'new-block-received', 'live block 999');
  await waitForLog('live block 999');
  const first = await page.locator('#log tbody tr').first().innerText();
  assert.match(first, /2f\s+new block received\s+live block 999/);
});

test('filters narrow the log', async () => {
  await page.selectOption('#f-sender', '4l');
  const senders = await page.locator('#log tbody tr td:nth-child(3)').allInnerTexts();
  assert.ok(senders.length > 0 && senders.every((sender) => sender === '4l'), senders.join());
  await page.selectOption('#f-event', 'EVENT_NEW_BLOCK_RECEIVED');
  await page.fill('#f-text', 'block 12');
  const messages = await page.locator('#log tbody td.message').allInnerTexts();
  assert.equal(messages.length, 6, messages.join());
  assert.ok(messages.every((message) => message.startsWith('block 12')));
  assert.match(await page.locator('#log-count').innerText(), /^6 shown/);
  await page.selectOption('#f-sender', '');
  await page.selectOption('#f-event', '');
  await page.fill('#f-text', '');
});

test('reported text is shown as text and runs nothing', async () => {
  const attack = '<img src=x onerror=alert(1)><script>alert(2)</script>';
  await report(server.url, 'evil', 'new-peer-connected', attack);
  await waitForLog(attack);
  await page.waitForTimeout(300);
  assert.equal(await page.locator('#log img, #nodes img, #log script').count(), 0);
  assert.equal(dialogs, 0, 'no dialog opened');
});

test('the CSV export matches /api/reports', async () => {
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-csv')]);
  const lines = readFileSync(await download.path(), 'utf8').trimEnd().split('\r\n');
  const [header, ...rows] = lines.flatMap((line) => line.split('\n'));
  assert.equal(header, 'seq,run,time_unix_nano,received_unix_nano,sender,event,message,report_id');
  const api = await (await fetch(`${server.url}/api/reports?limit=10000`)).json();
  assert.equal(rows.length, api.reports.length);
  rows.forEach((row, index) => {
    const expected = api.reports[index];
    assert.ok(row.startsWith(`${expected.seq},${expected.run},`), row);
    assert.ok(row.endsWith(`,${expected.report_id}`), row);
    assert.ok(row.includes(`,${expected.sender},${expected.event},`), row);
  });
});

test('after a server restart the page resumes and shows new reports', async () => {
  const port = new URL(server.url).port;
  await stopServer(server);
  await page.waitForSelector('#status.offline', { timeout: 10000 });
  assert.match(await page.locator('#status').innerText(), /disconnected/);
  server = await startServer(['--listen', `127.0.0.1:${port}`, '--db', db]);
  await report(server.url, '6l', 'new-block-received', 'after the restart');
  await waitForLog('after the restart');
  await page.waitForSelector('#status.online');
  const seqs = (await page.locator('#log tbody tr td:first-child').allInnerTexts()).map(Number);
  assert.equal(new Set(seqs).size, seqs.length, 'no report shown twice after resuming');
  assert.deepEqual(problems.filter((text) => !/ERR_CONNECTION_REFUSED|net::ERR/.test(text)), []);
});

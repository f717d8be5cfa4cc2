// The sweep view in a real browser: runs labelled with the light nodes' delay,
// reached from the header's "sweep…" control, drawn per kind with the slope in the
// caption, the table of runs beneath (a run's link opens it with its labels in the
// header), a log-scale toggle, and the figure downloads; no console error.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { launch, newRun, root, simulate, startServer, stopServer, waitFor } from './harness.mjs';

const WAIT = { timeout: 10000 };
const DELAYS = [0, 20, 40, 80, 0, 20, 40, 80];
let server;
let browser;
let page;
const problems = [];

before(async () => {
  server = await startServer(['--listen', '127.0.0.1:0', '--memory']);
  for (const [index, delay] of DELAYS.entries()) {
    await newRun(server.url, `light-${delay}ms-${index}`, { netem_ms: String(delay), client: 'v1.4.2' });
    await simulate(server.url, 12, 100 + index, delay);
  }
  await newRun(server.url, 'unlabelled');
  browser = await launch();
  page = await browser.newPage({ viewport: { width: 1280, height: 1100 }, acceptDownloads: true });
  page.setDefaultTimeout(WAIT.timeout);
  page.on('console', (message) => { if (message.type() === 'error') problems.push(message.text()); });
  page.on('pageerror', (error) => problems.push(error.message));
}, { timeout: 180000 });

after(async () => {
  await browser?.close();
  if (server) await stopServer(server);
});

test('the sweep view draws the runs against their label and links each', async () => {
  await page.goto(`${server.url}/`);
  await waitFor('the live view with every run', page.waitForFunction(
    () => document.getElementById('run').options.length === 10, null, WAIT));
  await page.click('#sweep-open');
  await waitFor('the sweep picker with the labels', page.waitForFunction(
    () => document.getElementById('sweep-by').options.length === 2, null, WAIT));
  await page.selectOption('#sweep-by', 'netem_ms');
  await page.click('#sweep-go');
  await waitFor('the sweep view', page.waitForFunction(
    () => document.querySelectorAll('#sweep-table tbody tr').length === 8, null, WAIT));
  assert.match(page.url(), /\?sweep=netem_ms$/);
  const answer = await (await fetch(`${server.url}/api/sweep?by=netem_ms`)).json();

  // One chart a kind with receipts, each with its slope: light nodes +1 ms a ms
  // on half the receivers, so block p50 moves by less than one, and upwards.
  const kinds = await page.$$eval('canvas.sweep-chart', (canvases) => canvases.map((c) => c.dataset.kind));
  assert.deepEqual(kinds, ['problem', 'block', 'reveal']);
  const caption = await page.locator('#sweep-charts figcaption').nth(1).textContent();
  const slope = answer.slopes.block;
  assert.ok(slope.per_unit_ms > 0 && slope.per_unit_ms <= 1.05, JSON.stringify(slope));
  assert.ok(caption.includes(`each unit of netem_ms adds ${slope.per_unit_ms.toFixed(2)} ms [`), caption);
  const drawn = await page.$$eval('canvas.sweep-chart', (canvases) => canvases.map((canvas) => {
    const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
    let blue = 0;
    for (let i = 0; i < data.length; i += 4) if (data[i] < 60 && data[i + 2] > 160 && data[i + 3] > 200) blue += 1;
    return { marks: canvas.marks.length, blue };
  }));
  for (const chart of drawn) {
    assert.equal(chart.marks, 8, 'a p50 mark a run');
    assert.ok(chart.blue > 50, `p50 marks are drawn: ${JSON.stringify(chart)}`);
  }
  const values = await page.$$eval('#sweep-table tbody tr td:first-child', (cells) => cells.map((cell) => cell.textContent));
  assert.deepEqual(values, ['0', '0', '20', '20', '40', '40', '80', '80']);

  // The log scale redraws; the downloads carry the axes and the data.
  await page.check('#sweep-log');
  const svg = await download('sweep-block', 'svg');
  const read = await page.evaluate((source) => {
    const doc = new DOMParser().parseFromString(source, 'image/svg+xml');
    return { error: doc.querySelector('parsererror')?.textContent ?? null, texts: [...doc.querySelectorAll('text')].map((t) => t.textContent) };
  }, svg.bytes.toString('utf8'));
  assert.equal(read.error, null);
  for (const text of ['block latency by netem_ms', 'latency (ms)', 'netem_ms', 'p99', 'p50 with 95% interval', 'Theil–Sen fit of p50']) {
    assert.ok(read.texts.includes(text), `${text} in ${read.texts}`);
  }
  assert.equal(svg.name, 'sweep-netem_ms-block.svg');
  const png = await download('sweep-block', 'png');
  assert.deepEqual([...png.bytes.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
  const csv = (await download('sweep-block', 'csv')).bytes.toString('utf8').trim().split(/\r?\n/);
  assert.ok(csv[0].startsWith('value,run_id,run,kind,count,p50_ms'), csv[0]);
  assert.equal(csv.length, 1 + 8 * 3);

  mkdirSync(join(root, 'target/shots'), { recursive: true });
  await page.screenshot({ path: join(root, 'target/shots/sweep.png'), fullPage: true });

  // A run's link opens it, its labels in the header.
  const first = answer.runs[0];
  await page.click(`#sweep-table tbody tr:first-child a`);
  await waitFor('the run opened from the sweep', page.waitForFunction(
    (name) => document.getElementById('run').selectedOptions[0]?.textContent.startsWith(name), first.name, WAIT));
  assert.equal(await page.locator('#run-labels').textContent(), 'client=v1.4.2 netem_ms=0');
  assert.deepEqual(problems, []);
});

/** Clicks one chart's download button; resolves with the file's name and bytes. */
async function download(chart, format) {
  const button = page.locator(`.downloads[data-chart="${chart}"] button[data-format="${format}"]`);
  const [file] = await Promise.all([
    waitFor(`the ${format} download of ${chart}`, page.waitForEvent('download', WAIT)),
    button.click(),
  ]);
  assert.equal(await file.failure(), null, `${chart} ${format}: the download failed`);
  return { name: file.suggestedFilename(), bytes: readFileSync(await file.path()) };
}

// Dashboard benchmark in headless Chromium against a run of REPORTS reports
// (default 1,000,000; 10,000,000 by hand), filled by the simulated network. Prints
// figures; asserts nothing on speed.
//   node benches/dashboard.mjs [REPORTS] [--memory]
// --memory: the server keeps reports in memory instead of SQLite (a temp file).
//
// - first render: navigation -> populated overview (nodes, headline, first log page,
//   timeline window), median of 5 fresh pages;
// - JS heap used by the page after load (CDP Performance.getMetrics), before and
//   after a garbage collection;
// - report-to-screen: from just before a report is POSTed to /send in this process
//   to its row appearing in the log (a MutationObserver in the page notes Date.now();
//   both clocks are this machine's wall clock), over 40 probes 100 ms apart;
// - the server's side: its RSS (VmRSS) before and with dashboards open, and the
//   time of the API reads a page makes.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launch, simulate, startServer, stopServer } from '../tests/browser/harness.mjs';

const target = Number(process.argv.slice(2).find((arg) => /^\d+$/.test(arg)) || 1000000);
const memory = process.argv.includes('--memory');
const REPORTS_PER_ROUND = 40; // what examples/network.rs sends per block round
const PROBES = 40;
const median = (values) => values.slice().sort((a, b) => a - b)[Math.floor(values.length / 2)];
const percentile = (values, fraction) => values.slice().sort((a, b) => a - b)[Math.ceil(fraction * values.length) - 1];
const mib = (bytes) => (bytes / 1048576).toFixed(1);
const rss = (pid) => Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/)[1]) * 1024;

const dir = mkdtempSync(join(tmpdir(), 'perfstats-bench-'));
const server = await startServer(['--listen', '127.0.0.1:0', ...(memory ? ['--memory'] : ['--db', join(dir, 'bench.db')])]);
const browser = await launch();
const timed = async (path) => {
  const started = performance.now();
  const response = await fetch(`${server.url}${path}`);
  if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
  await response.arrayBuffer();
  return performance.now() - started;
};
/** Navigates and resolves once the overview is populated. */
const populated = (page) => page.waitForFunction(() => document.querySelectorAll('#nodes tbody tr').length >= 7
  && document.querySelectorAll('#log tbody tr').length === 100
  && /winner/.test(document.getElementById('headline').textContent)
  && /^whole run: .* (buckets|single)/.test(document.getElementById('window').textContent), null, { timeout: 120000 });

try {
  const filling = Date.now();
  await simulate(server.url, Math.ceil(target / REPORTS_PER_ROUND));
  const fillMs = Date.now() - filling;
  const runs = await (await fetch(`${server.url}/api/runs`)).json();
  const reports = runs[runs.length - 1].reports;
  const idleRss = rss(server.child.pid);

  const firstRender = [];
  for (let i = 0; i < 5; i += 1) {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const started = Date.now();
    await page.goto(`${server.url}/`);
    await populated(page);
    firstRender.push(Date.now() - started);
    await page.close();
  }

  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  await page.goto(`${server.url}/`);
  await populated(page);
  await page.waitForSelector('#status.online', { timeout: 60000 });
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Performance.enable');
  const heap = async () => (await cdp.send('Performance.getMetrics')).metrics.find((m) => m.name === 'JSHeapUsedSize').value;
  const heapLoaded = await heap();
  await cdp.send('HeapProfiler.collectGarbage');
  const heapCollected = await heap();

  const api = { analysis: [], timeline: [], log: [], window: [] };
  for (let i = 0; i < 5; i += 1) {
    api.analysis.push(await timed('/api/analysis?recent=60'));
    api.timeline.push(await timed('/api/timeline?buckets=400'));
    api.log.push(await timed('/api/reports?order=desc&limit=100'));
    const { run_from: from, run_to: to } = await (await fetch(`${server.url}/api/timeline?buckets=1`)).json();
    const middle = from + (to - from) / 2;
    api.window.push(await timed(`/api/timeline?from=${Math.floor(middle)}&to=${Math.floor(middle + 2e9)}&buckets=400`));
  }

  await page.evaluate(() => {
    window.seen = {};
    new MutationObserver(() => {
      const now = Date.now();
      for (const cell of document.querySelectorAll('#log tbody td.message')) {
        if (cell.textContent.startsWith('probe ') && !window.seen[cell.textContent]) window.seen[cell.textContent] = now;
      }
    }).observe(document.querySelector('#log tbody'), { childList: true });
  });
  const sent = {};
  for (let i = 0; i < PROBES; i += 1) {
    const message = `probe ${i}`;
    sent[message] = Date.now();
    const response = await fetch(`${server.url}/send`, {
      method: 'POST', body: new URLSearchParams({ time: '0', sender: 'probe', eventtype: 'EVENT_TRANSACTION_RECEIVED', message }),
    });
    if ((await response.text()).trim() !== 'ACK') throw new Error(`no ACK for ${message}`);
    await new Promise((done) => setTimeout(done, 100));
  }
  await page.waitForFunction((count) => Object.keys(window.seen).length === count, PROBES, { timeout: 10000 })
    .catch(() => { throw new Error('not every probe reached the page within 10 s'); });
  const seen = await page.evaluate(() => window.seen);
  const delays = Object.entries(sent).map(([message, at]) => seen[message] - at);
  const openRss = rss(server.child.pid);
  const heapAfterProbes = await heap();

  const ms = (values) => `median ${median(values).toFixed(1)} ms, max ${Math.max(...values).toFixed(1)} ms`;
  console.log(`dashboard benchmark: ${reports} reports in the run (${memory ? 'memory' : 'SQLite'} store), headless Chromium, ${process.env.CI ? 'CI' : 'local'} machine`);
  console.log(`  filled by examples/network (pace 0, batched) in ${(fillMs / 1000).toFixed(1)} s`);
  console.log(`  first render (navigation -> populated overview): median ${median(firstRender)} ms of ${firstRender.join(', ')} ms`);
  console.log(`  JS heap used after load: ${mib(heapLoaded)} MiB (${mib(heapCollected)} MiB after GC, ${mib(heapAfterProbes)} MiB after the probes)`);
  console.log(`  report-to-screen (POST /send -> row in the log): p50 ${percentile(delays, 0.5)} ms, p95 ${percentile(delays, 0.95)} ms, max ${Math.max(...delays)} ms over ${delays.length} reports 100 ms apart`);
  console.log(`  server RSS: ${mib(idleRss)} MiB after the fill, ${mib(openRss)} MiB with a dashboard open after ${firstRender.length + 1} page loads`);
  console.log(`  API reads of an open dashboard: /api/analysis ${ms(api.analysis)}; /api/timeline whole run ${ms(api.timeline)}; 2 s window ${ms(api.window)}; log page ${ms(api.log)}`);
} finally {
  await browser.close();
  await stopServer(server);
  rmSync(dir, { recursive: true, force: true });
}

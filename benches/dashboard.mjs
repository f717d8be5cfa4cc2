// Dashboard benchmark in headless Chromium: time from navigation to the populated
// overview, and from a report's ACK to its row in the page, with a run of
// REPORTS reports (default 100,000). Prints figures; asserts nothing.
//   node benches/dashboard.mjs [REPORTS]
import { launch, report, simulate, startServer, stopServer } from '../tests/browser/harness.mjs';

const target = Number(process.argv[2] || 100000);
const REPORTS_PER_ROUND = 40; // what examples/network.rs sends per block round
const median = (values) => values.slice().sort((a, b) => a - b)[Math.floor(values.length / 2)];
const percentile = (values, fraction) => values.slice().sort((a, b) => a - b)[Math.ceil(fraction * values.length) - 1];

const server = await startServer(['--listen', '127.0.0.1:0', '--memory']);
const browser = await launch();
try {
  await simulate(server.url, Math.ceil(target / REPORTS_PER_ROUND));
  const runs = await (await fetch(`${server.url}/api/runs`)).json();
  const reports = runs[0].reports;

  const firstRender = [];
  const fullyLoaded = [];
  for (let i = 0; i < 5; i += 1) {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const started = Date.now();
    await page.goto(`${server.url}/`);
    await page.waitForSelector('#nodes tbody tr');
    firstRender.push(Date.now() - started);
    await page.waitForFunction((count) => document.getElementById('totals').textContent.startsWith(`${count} reports`), reports, { timeout: 60000 });
    fullyLoaded.push(Date.now() - started);
    await page.close();
  }

  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  await page.goto(`${server.url}/`);
  await page.waitForSelector('#status.online', { timeout: 60000 });
  await page.evaluate(() => {
    window.seen = {};
    new MutationObserver(() => {
      for (const cell of document.querySelectorAll('#log tbody td.message')) {
        if (cell.textContent.startsWith('probe ') && !window.seen[cell.textContent]) window.seen[cell.textContent] = Date.now();
      }
    }).observe(document.querySelector('#log tbody'), { childList: true });
  });
  const delays = [];
  for (let i = 0; i < 40; i += 1) {
    const message = `probe ${i}`;
    const acked = await report(server.url, 'probe', 'transaction-received', message);
    await page.waitForFunction((wanted) => window.seen[wanted], message, { timeout: 10000 });
    delays.push((await page.evaluate((wanted) => window.seen[wanted], message)) - acked);
  }
  console.log(`dashboard benchmark, ${reports} reports in the run, headless Chromium, ${process.env.CI ? 'CI' : 'local'} machine:`);
  console.log(`  first render (navigation -> populated overview): median ${median(firstRender)} ms of ${firstRender.join(', ')} ms (goal <= 1000 ms)`);
  console.log(`  every report loaded into log and timeline: median ${median(fullyLoaded)} ms`);
  console.log(`  report-to-screen (ACK -> row in the log): p50 ${percentile(delays, 0.5)} ms, p95 ${percentile(delays, 0.95)} ms, max ${Math.max(...delays)} ms over ${delays.length} reports (goal p95 <= 100 ms)`);
} finally {
  await browser.close();
  await stopServer(server);
}

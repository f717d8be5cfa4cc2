// perfstats dashboard: native ES modules, no build step (the server embeds each
// file). Reported text is only ever set as textContent, never parsed as HTML.
//
// The page holds a bounded amount whatever the run's length: one page of the log,
// the newest rounds, one timeline window (counts per bucket, or the raw reports
// once zoomed in far enough), the run's summaries. Everything else is read from the
// server on demand; the live stream only updates what is on screen.
//
// This entry module picks the view: /?compare=a,b shows two runs side by side
// (js/compare.js), /?sweep=LABEL a series of runs against a label's value
// (js/sweep.js), anything else the live view (js/live.js, which ties the views of
// js/ together; /?run=ID opens that run). Every view shows the cluster badge of a
// server sharing a stream (js/cluster.js).
import { watchCluster } from './js/cluster.js';
import { compare, compareError, compareParam, showCompare } from './js/compare.js';
import { showLive, showLiveError } from './js/live.js';
import { wireComparePicker } from './js/picker.js';
import { showSweep, sweepParam, wireSweepPicker } from './js/sweep.js';
import { $ } from './js/draw.js';

async function main() {
  wireComparePicker();
  wireSweepPicker();
  watchCluster();
  const swept = sweepParam();
  if (swept) {
    await showSweep(swept);
    return;
  }
  const pair = compareParam();
  if (pair) {
    // Only the comparison: no live stream, no live reads.
    await showCompare(pair);
    return;
  }
  await showLive();
}

main().catch((error) => {
  if (compare.pair) { compareError(`error: ${error.message}`); return; }
  if (sweepParam()) { $('sweep-note').textContent = `error: ${error.message}`; return; }
  showLiveError(error);
});

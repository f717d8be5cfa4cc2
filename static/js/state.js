// The live view's shared state: the run shown (its id and name) and what is known
// of it (the nodes shown, how many it has, its analysis, its total), and the live
// stream's bookkeeping.
// The views read it; live.js changes it.
export const state = {
  run: null, runName: '', total: 0, nodes: new Map(), nodesTotal: 0, analysis: null, source: null, lastSeq: 0,
  summaryTimer: null, frame: 0, pending: [],
};

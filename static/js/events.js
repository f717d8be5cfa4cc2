// The event and sync-phase names, read once from the server (GET /api/events, built
// from src/event.rs and the analysis's sync phases: the page keeps no second list),
// and each event's colour.
import { getJson } from './api.js';

/** Each event's colour, by its place in the server's list (proto order). */
const COLORS = ['#8e99ab', '#1f77b4', '#aec7e8', '#17becf', '#9467bd', '#c5b0d5', '#2ca02c', '#ff7f0e',
  '#b8b8b8', '#bcbd22', '#e377c2', '#8c564b', '#d62728', '#ff9896', '#7f0000', '#f7b6d2', '#98df8a'];

/** Every event's name (`EVENT_…`), in proto order; filled by loadEvents(). */
export const EVENTS = [];
/** The sync phases in their usual order, `{name, label}`; filled by loadEvents(). */
export const PHASES = [];
/** The phase that says a node is in sync: the key of its time in `phases_ms`. */
export const SYNCED = 'EVENT_INITIAL_SYNC_COMPLETED';

/** Reads the names from the server; the views that show events wait for this. */
export async function loadEvents() {
  const names = await getJson('/api/events');
  EVENTS.splice(0, EVENTS.length, ...names.events.map((event) => event.name));
  PHASES.splice(0, PHASES.length, ...names.phases);
}

/** The colour of the `i`th event. */
export const colorAt = (i) => COLORS[i] || '#000';
/** The colour of the event named `event`. */
export const color = (event) => colorAt(EVENTS.indexOf(event));

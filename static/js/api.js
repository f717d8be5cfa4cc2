// The data layer: addresses of the server's API (carrying the page's ?token=, for a
// server started with a read token), JSON reads and writes, and the live stream.

/** The page's `?token=`, passed on every read and write (null: none). */
export const token = new URLSearchParams(location.search).get('token');

/** `path` with the non-empty `params` (an array value: the key repeated) and the token as its query. */
export function url(path, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    for (const one of Array.isArray(value) ? value : [value]) {
      if (one !== '' && one != null) query.append(key, one);
    }
  }
  if (token) query.set('token', token);
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

/** GETs `path`; resolves with the response, whatever its status. */
export function get(path, params) {
  return fetch(url(path, params));
}

/** GETs `path` and parses its JSON; rejects with the status and body unless it is 2xx. */
export async function getJson(path, params) {
  const response = await get(path, params);
  if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

/** POSTs `body` as JSON to `path` (the token also as a bearer); resolves with the response. */
export function postJson(path, body) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  return fetch(url(path), { method: 'POST', headers, body: JSON.stringify(body) });
}

/**
 * Opens the live stream of `run`'s reports after seq `after` (0 or null: from its
 * start); calls `onReport` with each report, `onOpen` and `onError` as the
 * EventSource does (it retries by itself, sending Last-Event-ID).
 */
export function openStream(run, after, { onOpen, onError, onReport }) {
  const source = new EventSource(url('/api/stream', { run, after: after || null }));
  source.onopen = onOpen;
  source.onerror = onError;
  source.addEventListener('report', (event) => onReport(JSON.parse(event.data)));
  return source;
}

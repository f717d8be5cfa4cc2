// The header's "compare…" control, on both views: pick run a and run b, then go to
// /?compare=a,b.
import { $, el, labelText } from './draw.js';
import { getJson } from './api.js';
import { compare, compareHref } from './compare.js';
import { state } from './state.js';

async function toggleComparePicker() {
  const form = $('compare-form');
  if (!form.hidden) { closeComparePicker(); return; }
  const runs = await getJson('/api/runs');
  const options = () => runs.map((run) => {
    const labels = labelText(run.labels);
    const option = el('option', `${run.name} (${run.reports})${labels ? ` ${labels}` : ''}`);
    option.value = run.id;
    return option;
  });
  $('compare-a').replaceChildren(...options());
  $('compare-b').replaceChildren(...options());
  let a;
  let b;
  if (compare.data) {
    [a, b] = [compare.data.a.id, compare.data.b.id];
  } else {
    // By default the run shown (b) against the one before it (a).
    const shown = runs.findIndex((run) => String(run.id) === String(state.run ?? ''));
    const at = shown >= 0 ? shown : runs.length - 1;
    b = runs[at]?.id;
    a = runs[at - 1]?.id ?? runs[at + 1]?.id ?? b;
  }
  if (a != null) $('compare-a').value = a;
  if (b != null) $('compare-b').value = b;
  form.hidden = false;
  $('compare-open').setAttribute('aria-expanded', 'true');
  updateComparePicker();
  $('compare-a').focus();
}

function closeComparePicker() {
  $('compare-form').hidden = true;
  $('compare-open').setAttribute('aria-expanded', 'false');
}

function updateComparePicker() {
  const [a, b] = [$('compare-a').value, $('compare-b').value];
  const ready = a !== '' && b !== '' && a !== b;
  $('compare-go').disabled = !ready;
  $('compare-pick-note').textContent = $('compare-a').options.length < 2 ? 'only one run so far'
    : ready ? '' : 'pick two different runs';
}

/** Wires the header's compare… button and its form. */
export function wireComparePicker() {
  $('compare-open').addEventListener('click', () => toggleComparePicker().catch(console.warn));
  $('compare-cancel').addEventListener('click', closeComparePicker);
  $('compare-a').addEventListener('change', updateComparePicker);
  $('compare-b').addEventListener('change', updateComparePicker);
  $('compare-form').addEventListener('keydown', (event) => { if (event.key === 'Escape') closeComparePicker(); });
  $('compare-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const [a, b] = [$('compare-a').value, $('compare-b').value];
    if (a === '' || b === '' || a === b) return;
    location.assign(compareHref(a, b));
  });
}

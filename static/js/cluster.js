// The header's cluster badge, for servers sharing a stream (--nats): the stream's
// health as the server judges it (healthy / degraded / unreachable; the reasons on
// hover) and this server's lag, read from /api/cluster every few seconds. It links
// to that document. A server without a cluster answers health "none": the badge
// stays hidden and is not asked again.
import { $ } from './draw.js';
import { getJson, url } from './api.js';

const CLUSTER_EVERY_MS = 5000;

/** Shows the badge and keeps it current (returns once the first answer is shown). */
export async function watchCluster() {
  const badge = $('cluster-badge');
  badge.href = url('/api/cluster');
  let overview;
  try {
    overview = await getJson('/api/cluster');
  } catch (error) {
    // This server is unreachable for now: the status pill says so; ask again.
    console.warn(error);
    setTimeout(watchCluster, CLUSTER_EVERY_MS);
    return;
  }
  badge.dataset.health = overview.health;
  if (overview.health === 'none') { badge.hidden = true; return; }
  showCluster(badge, overview);
  setTimeout(watchCluster, CLUSTER_EVERY_MS);
}

function showCluster(badge, overview) {
  const lag = overview.server.lag;
  badge.textContent = `stream ${overview.health}${lag == null ? '' : ` · lag ${lag}`}`;
  badge.className = `status cluster ${overview.health}`;
  const leader = overview.stream?.leader ? `leader ${overview.stream.leader}` : 'no leader known';
  badge.title = [...overview.why, `${overview.stream?.name ?? 'stream'}: ${leader}; via NATS server ${overview.server.nats_server ?? '–'}`]
    .join('\n');
  badge.hidden = false;
}

import { TIME_TO_AUTH_BUCKETS, type AuthStatsJson, type ClusterAuthStats } from './auth-stats.ts'

/**
 * The cluster authentication statistics in the Prometheus text exposition format (0.0.4), from the
 * totals since start (Prometheus computes rates itself, so snapshots have no place here). Time to
 * authenticate becomes a histogram in seconds with the reference's bucket bounds, cumulative as
 * Prometheus requires; the last bound (Long.MAX_VALUE ms) is `+Inf`. Issue 8's `/metrics` endpoint
 * appends this to its registry output.
 */
export function renderAuthStatsPrometheus(stats: ClusterAuthStats, labels: { node?: string } = {}): string {
  const sides: Array<[string, AuthStatsJson]> = [
    ['server', stats.server.total()],
    ['client', stats.client.total()],
  ]
  const extra = labels.node === undefined ? '' : `,node="${escapeLabel(labels.node)}"`
  const out: string[] = []
  const counter = (name: string, help: string, pick: (s: AuthStatsJson) => number): void => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`)
    for (const [side, s] of sides) out.push(`${name}{side="${side}"${extra}} ${pick(s)}`)
  }
  counter('apptunnel_cluster_auths_total', 'Cluster authentication attempts.', (s) => s.authsTotal)
  counter('apptunnel_cluster_auths_success_total', 'Successful cluster authentications.', (s) => s.authsSuccess)
  counter('apptunnel_cluster_auths_failed_total', 'Failed cluster authentications, timeouts excluded.', (s) => s.authsFailed)
  counter('apptunnel_cluster_auths_failed_by_timeout_total', 'Cluster authentications that timed out.', (s) => s.authsFailedByTimeout)
  counter('apptunnel_cluster_auths_skipped_no_secret_total', 'Cluster handshakes that skipped authentication (disabled, or an empty key).', (s) => s.authsSkippedNoSecret)
  const refused = stats.busFramesRefused()
  const h0 = 'apptunnel_cluster_bus_frames_refused_total'
  out.push(`# HELP ${h0} Cluster bus frames refused after the handshake because their MAC did not verify (altered, injected, replayed or reflected); each closed its link.`, `# TYPE ${h0} counter`)
  for (const side of ['server', 'client'] as const) out.push(`${h0}{side="${side}"${extra}} ${refused[side]}`)

  const gauge = (name: string, help: string, pick: (s: AuthStatsJson) => number): void => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`)
    for (const [side, s] of sides) out.push(`${name}{side="${side}"${extra}} ${seconds(pick(s))}`)
  }
  gauge('apptunnel_cluster_auth_duration_min_seconds', 'Shortest successful cluster authentication since start (0 before the first).', (s) => s.timeToAuthMillis.min)
  gauge('apptunnel_cluster_auth_duration_max_seconds', 'Longest successful cluster authentication since start.', (s) => s.timeToAuthMillis.max)

  const h = 'apptunnel_cluster_auth_duration_seconds'
  out.push(`# HELP ${h} Time to authenticate a cluster connection (successes; whole milliseconds).`, `# TYPE ${h} histogram`)
  for (const [side, s] of sides) {
    let cumulative = 0
    TIME_TO_AUTH_BUCKETS.forEach((bound, i) => {
      cumulative += s.timeToAuthMillis.distributionCounter[bound]
      const le = i === TIME_TO_AUTH_BUCKETS.length - 1 ? '+Inf' : seconds(Number(bound))
      out.push(`${h}_bucket{side="${side}"${extra},le="${le}"} ${cumulative}`)
    })
    out.push(`${h}_sum{side="${side}"${extra}} ${seconds(s.timeToAuthMillis.sum)}`)
    out.push(`${h}_count{side="${side}"${extra}} ${s.timeToAuthMillis.count}`)
  }
  return out.join('\n') + '\n'
}

function seconds(ms: number): string {
  // Milliseconds are whole numbers, so three decimals are exact; trim what adds nothing.
  return String(Number((ms / 1000).toFixed(3)))
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
}

import type { Logger } from '../observability/index.ts'
import type { AuthStatsJson, ClusterAuthStats } from './auth-stats.ts'

/** Tag of every statistics line, for grep and log pipelines. */
export const STATS_TAG = '[APPTUNNEL-STATS] [CLUSTER-AUTH]'

export type StatsCategory = 'server snapshot' | 'client snapshot' | 'server total' | 'client total'

export interface StatsLine {
  category: StatsCategory
  stats: AuthStatsJson
}

/**
 * The four statistics lines of one report, in the reference's order. Taking them resets both
 * snapshots, so each snapshot line covers exactly the time since the previous report.
 */
export function takeStatsLines(stats: ClusterAuthStats): StatsLine[] {
  return [
    { category: 'server snapshot', stats: stats.server.takeSnapshot() },
    { category: 'client snapshot', stats: stats.client.takeSnapshot() },
    { category: 'server total', stats: stats.server.total() },
    { category: 'client total', stats: stats.client.total() },
  ]
}

/** `[APPTUNNEL-STATS] [CLUSTER-AUTH] Cluster authentication server snapshot stats: {…}` */
export function formatStatsLine(line: StatsLine): string {
  return `${STATS_TAG} Cluster authentication ${line.category} stats: ${JSON.stringify(line.stats)}`
}

/**
 * Logs the four lines every `intervalMs` (`--cluster-stats-interval-ms`, default 5 minutes) at
 * INFO. The JSON sits in the message itself, as the reference writes it, so one grep for the tag
 * finds every line whatever the log format.
 */
export class StatsReporter {
  readonly #stats: ClusterAuthStats
  readonly #log: Logger
  readonly #timer: NodeJS.Timeout

  constructor(stats: ClusterAuthStats, options: { intervalMs: number }, deps: { log: Logger }) {
    this.#stats = stats
    this.#log = deps.log
    this.#timer = setInterval(() => this.report(), options.intervalMs)
  }

  report(): void {
    for (const line of takeStatsLines(this.#stats)) this.#log.info({ statsCategory: line.category }, formatStatsLine(line))
  }

  close(): void {
    clearInterval(this.#timer)
  }
}

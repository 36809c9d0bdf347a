import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { test } from 'node:test'
import { createLogger } from '../observability/index.ts'
import { renderAuthStatsPrometheus } from './auth-stats-prometheus.ts'
import { AuthStats, ClusterAuthStats, TIME_TO_AUTH_BUCKETS, bucketOf, type AuthStatsJson } from './auth-stats.ts'
import { STATS_TAG, StatsReporter, formatStatsLine, takeStatsLines } from './stats-reporter.ts'

function clock(start = 1_618_398_658_051): { now(): number; advance(ms: number): void } {
  let t = start
  return { now: () => t, advance: (ms) => void (t += ms) }
}

function invariant(s: AuthStatsJson): void {
  assert.equal(s.authsTotal, s.authsSuccess + s.authsFailed + s.authsFailedByTimeout + s.authsSkippedNoSecret)
  assert.equal(s.timeToAuthMillis.count, s.authsSuccess)
  assert.equal(Object.values(s.timeToAuthMillis.distributionCounter).reduce((a, b) => a + b, 0), s.authsSuccess)
}

test('bucket edges: rounded to the nearest ms, upper bound inclusive, last bucket is Long.MAX_VALUE', () => {
  const cases: Array<[number, string]> = [
    [0, '0'], [0.49, '0'], [0.5, '1'], [1, '1'], [1.49, '1'], [1.5, '5'], [5, '5'], [5.4, '5'], [5.5, '10'], [10, '10'],
    [11, '50'], [50, '50'], [51, '100'], [100, '100'], [101, '500'], [500, '500'], [501, '1000'], [1000, '1000'],
    [1001, '5000'], [5000, '5000'], [5000.4, '5000'], [5001, '9223372036854775807'], [3_600_000, '9223372036854775807'],
  ]
  for (const [ms, bucket] of cases) {
    const s = new AuthStats()
    s.success(ms)
    const dist = s.total().timeToAuthMillis.distributionCounter
    assert.equal(dist[bucket as keyof typeof dist], 1, `${ms} ms → ${bucket}`)
    assert.equal(bucketOf(Math.round(ms)), bucket)
  }
  assert.deepEqual([...TIME_TO_AUTH_BUCKETS], ['0', '1', '5', '10', '50', '100', '500', '1000', '5000', '9223372036854775807'])
})

test('the JSON has the reference shape and key order; empty stats report 0 for min, max and avg', () => {
  const c = clock()
  const s = new AuthStats(c)
  const empty = s.total()
  assert.deepEqual(Object.keys(empty), ['startTimestampMillis', 'authsTotal', 'authsSkippedNoSecret', 'authsFailed', 'authsFailedByTimeout', 'authsSuccess', 'timeToAuthMillis'])
  assert.deepEqual(Object.keys(empty.timeToAuthMillis), ['count', 'min', 'max', 'sum', 'avg', 'distributionCounter'])
  assert.deepEqual(empty.timeToAuthMillis, { count: 0, min: 0, max: 0, sum: 0, avg: 0, distributionCounter: Object.fromEntries(TIME_TO_AUTH_BUCKETS.map((k) => [k, 0])) })
  assert.equal(empty.startTimestampMillis, 1_618_398_658_051)
  assert.match(JSON.stringify(empty), /"9223372036854775807":0\}\}\}$/, 'the last bucket key is a JSON string key')

  for (const ms of [3, 45, 17, 0.2]) s.success(ms)
  s.failed()
  s.failedByTimeout()
  s.skippedNoSecret()
  const t = s.total()
  assert.equal(t.authsTotal, 7)
  assert.deepEqual(
    { count: t.timeToAuthMillis.count, min: t.timeToAuthMillis.min, max: t.timeToAuthMillis.max, sum: t.timeToAuthMillis.sum, avg: t.timeToAuthMillis.avg },
    { count: 4, min: 0, max: 45, sum: 65, avg: 16 },
    'avg rounds down (65 / 4)',
  )
  invariant(t)
})

test('snapshot resets at each take; total does not; each snapshot starts when the last was taken', () => {
  const c = clock()
  const s = new AuthStats(c)
  s.success(1)
  s.failed()
  c.advance(300_000)
  const first = s.takeSnapshot()
  assert.equal(first.authsTotal, 2)
  assert.equal(first.startTimestampMillis, 1_618_398_658_051)
  s.failedByTimeout()
  const second = s.takeSnapshot()
  assert.equal(second.startTimestampMillis, 1_618_398_658_051 + 300_000)
  assert.deepEqual([second.authsTotal, second.authsFailedByTimeout, second.authsSuccess], [1, 1, 0])
  assert.equal(s.takeSnapshot().authsTotal, 0)
  const total = s.total()
  assert.deepEqual([total.authsTotal, total.authsSuccess, total.authsFailed, total.authsFailedByTimeout], [3, 1, 1, 1])
  assert.equal(total.startTimestampMillis, 1_618_398_658_051)
  assert.equal(s.peekSnapshot().authsTotal, 0)
  for (const x of [first, second, total]) invariant(x)
})

test('four stats lines per report, tagged, naming their category, in the reference order', () => {
  const stats = new ClusterAuthStats(clock())
  stats.server.success(2)
  stats.client.failed()
  const lines = takeStatsLines(stats)
  assert.deepEqual(lines.map((l) => l.category), ['server snapshot', 'client snapshot', 'server total', 'client total'])
  const text = formatStatsLine(lines[0]!)
  assert.ok(text.startsWith(`${STATS_TAG} Cluster authentication server snapshot stats: {`))
  assert.deepEqual(JSON.parse(text.slice(text.indexOf('{'))), lines[0]!.stats)
  assert.equal(takeStatsLines(stats)[0]!.stats.authsTotal, 0, 'the snapshot reset')
  assert.equal(takeStatsLines(stats)[2]!.stats.authsTotal, 1, 'the total did not')
})

test('the reporter logs the four lines at INFO every interval, and stops on close', async () => {
  const out: string[] = []
  const log = createLogger({ level: 'info', destination: new Writable({ write: (c: Buffer, _e, cb) => (out.push(c.toString()), cb()) }) })
  const stats = new ClusterAuthStats()
  stats.server.success(0)
  const reporter = new StatsReporter(stats, { intervalMs: 30 }, { log })
  try {
    for (let i = 0; i < 100 && out.length < 4; i++) await new Promise((r) => setTimeout(r, 10))
  } finally {
    reporter.close()
  }
  const lines = out.slice(0, 4).map((l) => JSON.parse(l) as { level: number; msg: string; statsCategory: string })
  assert.deepEqual(lines.map((l) => l.statsCategory), ['server snapshot', 'client snapshot', 'server total', 'client total'])
  for (const l of lines) {
    assert.equal(l.level, 30)
    assert.ok(l.msg.startsWith('[APPTUNNEL-STATS] [CLUSTER-AUTH] Cluster authentication '))
  }
  assert.equal((JSON.parse(lines[0]!.msg.slice(lines[0]!.msg.indexOf('{'))) as AuthStatsJson).authsSuccess, 1)
})

test('Prometheus rendering: counters per side, cumulative histogram buckets in seconds with +Inf, _sum and _count', () => {
  const stats = new ClusterAuthStats()
  for (const ms of [0, 1, 3, 7, 7000]) stats.server.success(ms)
  stats.server.failed()
  stats.server.failedByTimeout()
  stats.client.skippedNoSecret()
  const text = renderAuthStatsPrometheus(stats, { node: 'n"1' })
  const value = (line: string): number => Number(line.slice(line.lastIndexOf(' ') + 1))
  const find = (prefix: string): string => {
    const line = text.split('\n').find((l) => l.startsWith(prefix))
    assert.ok(line, `missing ${prefix}`)
    return line
  }
  assert.equal(value(find('apptunnel_cluster_auths_total{side="server",node="n\\"1"}')), 7)
  assert.equal(value(find('apptunnel_cluster_auths_failed_by_timeout_total{side="server"')), 1)
  assert.equal(value(find('apptunnel_cluster_auths_skipped_no_secret_total{side="client"')), 1)
  const buckets = text.split('\n').filter((l) => l.startsWith('apptunnel_cluster_auth_duration_seconds_bucket{side="server"'))
  assert.deepEqual(
    buckets.map((l) => [/le="([^"]+)"/.exec(l)![1], value(l)]),
    [['0', 1], ['0.001', 2], ['0.005', 3], ['0.01', 4], ['0.05', 4], ['0.1', 4], ['0.5', 4], ['1', 4], ['5', 4], ['+Inf', 5]],
  )
  assert.equal(value(find('apptunnel_cluster_auth_duration_seconds_sum{side="server"')), 7.011)
  assert.equal(value(find('apptunnel_cluster_auth_duration_seconds_count{side="server"')), 5)
  assert.equal(value(find('apptunnel_cluster_auth_duration_max_seconds{side="server"')), 7)
  assert.match(text, /^# TYPE apptunnel_cluster_auth_duration_seconds histogram$/m)
  assert.ok(text.endsWith('\n'))
})

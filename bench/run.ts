/**
 * `npm run bench [-- --quick] [-- --no-write] [-- --profile] [-- --access-log-only] [-- --memory-only [--variant='FLAGS' …]] [-- --ceilings]`
 *
 * Starts one upstream app, a full tunnel (server and agent through the real CLI, each in its own
 * process) and `ssh -R` (when OpenSSH is installed) in front of it, then measures the direct path,
 * the tunnel and ssh in the same run, rotating their order round by round; full runs repeat the
 * data path with wrk and curl. Prints a table with the tunnel's ratio to direct and to ssh, writes
 * the results into docs/performance.md (full runs), and ends with one JSON line.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { cpus, totalmem, release, tmpdir } from 'node:os'
import { join } from 'node:path'
import type { BulkResult, RequestsResult, Target, WsResult } from './load-client.ts'
import { forkChild, startUpstreamAndLoad, type Child } from './lib/children.ts'
import { cpuMs, cpuMsOf, rssKiB, sampleRss } from './lib/proc-stats.ts'
import { Progress } from './lib/progress.ts'
import { spread, type Spread } from './lib/stats.ts'
import { startBenchAgent, startBenchServer, waitForStatus, type BenchServer, type ProductProcess } from './lib/tunnel-processes.ts'
import { renderTable, writePerformanceDoc, type Row } from './lib/report.ts'
import { profileRun } from './lib/profile.ts'
import { measureMemory, type MemoryVariant } from './lib/memory-run.ts'
import { sshPeerInstalled, startSshPeer, type SshPeer } from './lib/ssh-peer.ts'
import { ceilingSteps, measureCeilings } from './lib/ceilings-run.ts'
import { curlInstalled, runCurl, runWrk, wrkInstalled, writePatternFile, type CurlResult, type WrkResult } from './lib/standard-clients.ts'

// `--workers-only`: 1 against 2 server workers (bench/lib/workers-run.ts), a run of its own.
if (process.argv.slice(2).includes('--workers-only')) {
  const { runWorkersBench } = await import('./lib/workers-run.ts')
  await runWorkersBench()
  process.exit(0)
}

/**
 * `--variant='[cli=PATH] FLAGS'`: one more tunnel in `--memory-only`, its server and agent run with
 * these Node flags, from another checkout's bin/apptunnel.js when cli= is given
 */
const variants: MemoryVariant[] = process.argv
  .slice(2)
  .filter((a) => a.startsWith('--variant='))
  .map((a) => {
    const words = a.slice('--variant='.length).split(' ').filter((f) => f !== '')
    const cli = words.find((w) => w.startsWith('cli='))?.slice('cli='.length)
    return { flags: words.filter((w) => !w.startsWith('cli=')), ...(cli === undefined ? {} : { cli }) }
  })
const argv = new Set(process.argv.slice(2).filter((a) => !a.startsWith('--variant=')))
for (const a of argv) {
  if (!['--quick', '--no-write', '--write', '--profile', '--profile-only', '--access-log-only', '--memory-only', '--ceilings', '--help'].includes(a)) {
    process.stderr.write(`bench: unknown option ${a} (known: --quick, --no-write, --write, --profile, --profile-only, --access-log-only, --memory-only, --ceilings, --variant=FLAGS)\n`)
    process.exit(2)
  }
}
if (argv.has('--help')) {
  process.stdout.write("npm run bench [-- --quick] [-- --no-write] [-- --profile | --profile-only | --access-log-only | --memory-only [--variant='NODE FLAGS' ...] | --ceilings]\n")
  process.exit(0)
}
/** only memory: idle and peak RSS of server and agent under each load, per variant of Node flags */
const memoryOnly = argv.has('--memory-only')
if (variants.length > 0 && !memoryOnly) {
  process.stderr.write('bench: --variant goes with --memory-only\n')
  process.exit(2)
}
const quick = argv.has('--quick')
const profileOnly = argv.has('--profile-only')
const profile = profileOnly || argv.has('--profile')
/** only the access log's cost: two fresh tunnels, one with --access-log, alternating at c=50 */
const accessLogOnly = argv.has('--access-log-only')
/** only the ceilings of each layer for bulk (bench/lib/ceilings-run.ts); full runs include them */
const ceilingsOnly = argv.has('--ceilings')
const write = argv.has('--write') || (!quick && !profileOnly && !accessLogOnly && !memoryOnly && !ceilingsOnly && !argv.has('--no-write'))

const plan = quick
  ? { rounds: 2, concurrency: [1, 50], durationMs: 2500, warmupMs: 500, getBytes: 256 * 2 ** 20, postBytes: 64 * 2 ** 20, ws: false, sessions: 0, restartTunnels: 0, sshPeer: true, standardClients: false }
  : { rounds: 3, concurrency: [1, 50, 200], durationMs: 5000, warmupMs: 1000, getBytes: 2 ** 30, postBytes: 256 * 2 ** 20, ws: true, sessions: 1000, restartTunnels: 100, sshPeer: true, standardClients: true }

interface Figures {
  rows: Row[]
  json: Record<string, number>
}

async function main(): Promise<void> {
  const sides = 2 + (plan.sshPeer && sshPeerInstalled() ? 1 : 0)
  const crossChecks = plan.standardClients ? (wrkInstalled() ? 2 : 0) + (curlInstalled() ? 2 : 0) : 0
  const memoryVariants: MemoryVariant[] = [{ flags: [] }, ...variants]
  const steps = profileOnly ? 7 : accessLogOnly ? 2 + ACCESS_LOG_ROUNDS_ALONE * 2 : memoryOnly ? 1 + memoryVariants.length * (1 + MEMORY_ROUNDS * 3) :
    4 +
    plan.rounds * (plan.concurrency.length + 2 + (plan.ws ? 1 : 0) + crossChecks) * sides +
    (plan.restartTunnels > 0 ? 2 : 0) +
    1 + plan.rounds * 2 * 2 +
    1 +
    (quick ? 0 : ceilingSteps(CEILING_ROUNDS)) +
    (profile ? 2 : 0)
  const progress = new Progress(ceilingsOnly ? ceilingSteps(CEILING_ROUNDS) : steps)
  const children: Child[] = []
  const products: ProductProcess[] = []
  let server: BenchServer | undefined
  try {
    if (ceilingsOnly) {
      const c = await measureCeilings({ progress, rounds: CEILING_ROUNDS, bytes: CEILING_BYTES })
      progress.done()
      process.stdout.write(`\nceilings of each layer for bulk (agent session: ${c.cipher})\n\n${renderTable(c.rows)}\n${JSON.stringify(c.json)}\n`)
      return
    }
    progress.step('starting the upstream app and the load client')
    const { upstreamPort, load } = await startUpstreamAndLoad(children)

    if (accessLogOnly) {
      const figures = await measureAccessLog(load, upstreamPort, progress, ACCESS_LOG_ROUNDS_ALONE)
      progress.done()
      process.stdout.write(`\n${renderTable(figures.rows)}\n${JSON.stringify(figures.json)}\n`)
      return
    }
    if (memoryOnly) {
      const text = await measureMemory({ load, upstreamPort, progress, variants: memoryVariants, rounds: MEMORY_ROUNDS, durationMs: 5000, getBytes: 256 * 2 ** 20, postBytes: 64 * 2 ** 20 })
      progress.done()
      process.stdout.write(`\n${text}`)
      return
    }
    if (profileOnly) {
      progress.step('profiling server and agent under c=50 small GETs')
      const a = await profileRun({ upstreamPort, load, kind: 'requests', durationMs: 5000 })
      progress.step('profiling server and agent under a 1 GiB GET')
      const b = await profileRun({ upstreamPort, load, kind: 'get', bytes: 2 ** 30 })
      progress.step('profiling server and agent under a 1 GiB GET with curl as the client')
      const c = curlInstalled() ? await profileRun({ upstreamPort, load, kind: 'get', bytes: 2 ** 30, client: 'curl' }) : 'curl is not installed: no profile with it\n'
      progress.step('profiling server and agent under a 256 MiB POST echo')
      const d = await profileRun({ upstreamPort, load, kind: 'post', bytes: 256 * 2 ** 20 })
      progress.step('profiling server and agent under a 256 MiB POST echo with curl as the client')
      const e = curlInstalled() ? await profileRun({ upstreamPort, load, kind: 'post', bytes: 256 * 2 ** 20, client: 'curl' }) : 'curl is not installed: no profile with it\n'
      progress.done()
      process.stdout.write(`${a}\n${b}\n${c}\n${d}\n${e}`)
      return
    }
    progress.step('starting the tunnel server (apptunnel server)')
    server = await startBenchServer()
    const tunnel = await server.createTunnel('bench')
    progress.step('starting the agent (apptunnel agent) and waiting for CONNECTED')
    const agent = await startBenchAgent(tunnel.key, upstreamPort, 'bench-node')
    products.push(agent)
    await waitForStatus(server, [tunnel.id], 'CONNECTED', 20_000)

    const sides: Side[] = [
      { name: 'direct', label: 'direct', target: { port: upstreamPort, host: `127.0.0.1:${upstreamPort}` } },
      { name: 'tunnel', label: 'tunnel', target: { port: server.ingressPort, host: tunnel.host }, pids: () => [server!.proc.pid, agent.pid] },
    ]
    let peer: SshPeer | undefined
    if (plan.sshPeer) {
      progress.step('starting ssh -R on a private sshd')
      const p = await startSshPeer(upstreamPort)
      if ('unavailable' in p) progress.note(`ssh -R not measured: ${p.unavailable}`)
      else {
        peer = p
        sides.push({ name: 'ssh', label: p.label, target: { port: p.port, host: `127.0.0.1:${upstreamPort}` }, pids: () => p.pids() })
      }
    }
    let figures: Figures
    try {
      // What the relays hold before any load, once start-up garbage had a moment to be collected.
      await new Promise((r) => setTimeout(r, IDLE_SETTLE_MS))
      const idleKiB = { tunnel: rssKiB(server.proc.pid) + rssKiB(agent.pid), ...(peer === undefined ? {} : { ssh: sum(peer.pids().map(rssKiB)) }) }
      figures = await measureDataPath(load, sides, idleKiB, progress)
    } finally {
      await peer?.stop()
    }

    if (plan.restartTunnels > 0) {
      const fleet = await measureFleet(upstreamPort, progress)
      figures.rows.push(...fleet.rows)
      Object.assign(figures.json, fleet.json)
    }

    const access = await measureAccessLog(load, upstreamPort, progress, plan.rounds * 2)
    figures.rows.push(...access.rows)
    Object.assign(figures.json, access.json)

    if (!quick) {
      const c = await measureCeilings({ progress, rounds: CEILING_ROUNDS, bytes: CEILING_BYTES })
      figures.rows.push(...c.rows)
      Object.assign(figures.json, c.json)
    }

    progress.step('cluster bus handshakes')
    const cluster = await measureClusterHandshakes(quick)
    figures.rows.push(...cluster.rows)
    Object.assign(figures.json, cluster.json)

    let profileText = ''
    if (profile) {
      progress.step('profiling server and agent under c=50 small GETs')
      profileText += await profileRun({ upstreamPort, load, kind: 'requests', durationMs: 5000 })
      progress.step('profiling server and agent under a 1 GiB GET')
      profileText += await profileRun({ upstreamPort, load, kind: 'get', bytes: 2 ** 30 })
    }
    progress.done()

    const machine = `${cpus().length} × ${cpus()[0]?.model.trim() ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${release()}, Node ${process.version}`
    const command = `npm run bench${quick ? ' -- --quick' : ''}`
    process.stdout.write(`\napptunnel benchmark — ${command}\n${machine}\n\n${renderTable(figures.rows)}\n`)
    if (profileText !== '') process.stdout.write(`\n${profileText}\n`)
    if (write) {
      const file = await writePerformanceDoc({ date: new Date().toISOString().slice(0, 10), command, machine, rows: figures.rows, profile: profileText })
      process.stdout.write(`\nresults written to ${file}\n`)
    }
    process.stdout.write(JSON.stringify(figures.json) + '\n')
  } finally {
    for (const p of products) await p.stop().catch(() => {})
    await server?.dispose().catch(() => {})
    for (const c of children) await c.stop().catch(() => {})
  }
}

function r2(n: number): number {
  return Math.round(n * 100) / 100
}

function one(v: number): Spread {
  return { median: v, min: Number.NaN, max: Number.NaN }
}

/** One way to reach the app: direct, through the tunnel, or through `ssh -R`. */
interface Side {
  name: 'direct' | 'tunnel' | 'ssh'
  label: string
  target: Target
  /** the relay processes whose CPU and RSS are read around each job (none for direct) */
  pids?: () => number[]
}

interface Measured<T> {
  result: T
  /** CPU time of each of the side's processes during the job, ms */
  cpuMs: number[]
  /** peak of the summed RSS of the side's processes during the job, KiB */
  rssPeakKiB: number
}

/**
 * Runs a job against every side round by round, rotating which goes first so warm caches and
 * turbo favour none; reads the CPU and samples the RSS of each side's relay processes around it.
 */
async function rotate<T>(progress: Progress, label: string, sides: Side[], run: (side: Side) => Promise<T>, rounds = plan.rounds): Promise<BySide<T>> {
  const out = new Map<Side['name'], Array<Measured<T>>>(sides.map((s) => [s.name, []]))
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < sides.length; i++) {
      const side = sides[(round + i) % sides.length]!
      progress.step(`${label} · ${side.label} · round ${round + 1}/${rounds}`)
      const pids = side.pids?.() ?? []
      const cpu0 = pids.map((pid) => cpuMsOf([pid]))
      const sampler = pids.length > 0 ? sampleRss(pids) : undefined
      const result = await run(side)
      const rssPeakKiB = sampler?.stop().peakSumKiB ?? 0
      out.get(side.name)!.push({ result, cpuMs: pids.map((pid, k) => cpuMsOf([pid]) - cpu0[k]!), rssPeakKiB })
    }
  }
  return out
}

const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0)

type BySide<T> = Map<Side['name'], Array<Measured<T>>>

function columnOf<T>(m: BySide<T>, name: Side['name'], pick: (x: Measured<T>) => number): Spread | undefined {
  const list = m.get(name)
  return list === undefined ? undefined : spread(list.map(pick))
}

function medianOf<T>(m: BySide<T>, name: Side['name'], pick: (x: Measured<T>) => number): number {
  return columnOf(m, name, pick)?.median ?? Number.NaN
}

/** One figure for every side measured: direct (unless `direct: false`), tunnel and ssh. */
function rowOf<T>(m: BySide<T>, figure: string, unit: string, pick: (x: Measured<T>) => number, opts: { higherIsBetter?: boolean; direct?: boolean } = {}): Row {
  const r: Row = { figure, unit }
  const d = opts.direct === false ? undefined : columnOf(m, 'direct', pick)
  const t = columnOf(m, 'tunnel', pick)
  const s = columnOf(m, 'ssh', pick)
  if (d !== undefined) r.direct = d
  if (t !== undefined) r.tunnel = t
  if (s !== undefined) r.ssh = s
  if (opts.higherIsBetter !== undefined) r.higherIsBetter = opts.higherIsBetter
  return r
}

/**
 * Small GETs at each concurrency, bulk GET and POST echo, and (full runs) WebSocket echo, through
 * every side in the same rounds; with wrk and curl as the clients too in full runs. The tunnel's
 * and ssh's RSS is sampled during every load; `idleKiB` is what they held before any.
 */
async function measureDataPath(load: Child, sides: Side[], idleKiB: { tunnel: number; ssh?: number }, progress: Progress): Promise<Figures> {
  const rows: Row[] = []
  const json: Record<string, number> = {}
  const hasSsh = sides.some((s) => s.name === 'ssh')
  const rssPeak = { tunnel: 0, ssh: 0 }
  const notePeaks = <T>(m: BySide<T>): void => {
    for (const name of ['tunnel', 'ssh'] as const) for (const x of m.get(name) ?? []) rssPeak[name] = Math.max(rssPeak[name], x.rssPeakKiB)
  }
  for (const c of plan.concurrency) {
    const m = await rotate<RequestsResult>(progress, `100-byte GET, ${c} connection${c === 1 ? '' : 's'}`, sides, (side) =>
      load.call<RequestsResult>({ kind: 'requests', target: side.target, path: '/small', connections: c, durationMs: plan.durationMs, warmupMs: plan.warmupMs }, plan.durationMs + plan.warmupMs + 30_000),
    )
    notePeaks(m)
    for (const list of m.values()) for (const x of list) if (x.result.errors > 0) throw new Error(`${x.result.errors} requests failed at c=${c}`)
    const perReq = (x: Measured<RequestsResult>): number => (sum(x.cpuMs) * 1000) / x.result.totalRequests
    rows.push(rowOf(m, `requests/s, 100-byte GET, c=${c}`, 'rps', (x) => x.result.rps, { higherIsBetter: true }))
    rows.push(rowOf(m, `p50 latency, c=${c}`, 'ms', (x) => x.result.p50Ms, { higherIsBetter: false }))
    rows.push(rowOf(m, `p99 latency, c=${c}`, 'ms', (x) => x.result.p99Ms, { higherIsBetter: false }))
    rows.push(rowOf(m, `relay CPU per request (tunnel: server + agent; ssh: sshd + ssh), c=${c}`, 'µs', perReq, { direct: false }))
    if (c === 50) {
      rows.push({ figure: `… server CPU per request, c=${c}`, unit: 'µs', tunnel: spread(m.get('tunnel')!.map((x) => (x.cpuMs[0]! * 1000) / x.result.totalRequests)) })
      rows.push({ figure: `… agent CPU per request, c=${c}`, unit: 'µs', tunnel: spread(m.get('tunnel')!.map((x) => (x.cpuMs[1]! * 1000) / x.result.totalRequests)) })
    }
    if (c === 1) {
      const directP50 = medianOf(m, 'direct', (x) => x.result.p50Ms)
      const tunnelP50 = medianOf(m, 'tunnel', (x) => x.result.p50Ms)
      json.c1P50Ms = r2(tunnelP50)
      json.directC1P50Ms = r2(directP50)
      json.c1AddedMs = Math.round((tunnelP50 - directP50) * 1000) / 1000
      rows.push({ figure: 'latency added at p50, c=1', unit: 'ms', tunnel: one(tunnelP50 - directP50), ...(hasSsh ? { ssh: one(medianOf(m, 'ssh', (x) => x.result.p50Ms) - directP50) } : {}) })
      if (hasSsh) json.sshC1P50Ms = r2(medianOf(m, 'ssh', (x) => x.result.p50Ms))
    }
    if (c === 50) {
      json.rps = Math.round(medianOf(m, 'tunnel', (x) => x.result.rps))
      json.directRps = Math.round(medianOf(m, 'direct', (x) => x.result.rps))
      json.p99Ms = r2(medianOf(m, 'tunnel', (x) => x.result.p99Ms))
      json.directP99Ms = r2(medianOf(m, 'direct', (x) => x.result.p99Ms))
      json.cpuUsPerRequest = Math.round(medianOf(m, 'tunnel', perReq))
      json.rssUnderLoadMiB = r2(Math.max(...m.get('tunnel')!.map((x) => x.rssPeakKiB)) / 1024)
      if (hasSsh) {
        json.sshRps = Math.round(medianOf(m, 'ssh', (x) => x.result.rps))
        json.sshCpuUsPerRequest = Math.round(medianOf(m, 'ssh', perReq))
      }
    }
  }

  for (const kind of ['get', 'post'] as const) {
    const bytes = kind === 'get' ? plan.getBytes : plan.postBytes
    const label = kind === 'get' ? `GET ${bytes / 2 ** 20} MiB` : `POST echo ${bytes / 2 ** 20} MiB`
    const m = await rotate<BulkResult>(progress, label, sides, (side) => load.call<BulkResult>({ kind, target: side.target, bytes, timeoutMs: 300_000 }, 310_000))
    notePeaks(m)
    const perGiB = (x: Measured<BulkResult>): number => sum(x.cpuMs) / 1000 / (x.result.bytes / 2 ** 30)
    rows.push(rowOf(m, `${label}, bytes verified`, 'MB/s', (x) => x.result.MBps, { higherIsBetter: true }))
    rows.push(rowOf(m, `relay CPU for ${kind === 'get' ? 'GET' : 'POST'}`, 'core-s/GiB', perGiB, { direct: false }))
    // Split by process: a change to one side of the relay can move the other's cost per byte.
    const processPerGiB = (i: number) => (x: Measured<BulkResult>): number => (x.cpuMs[i]! / 1000) / (x.result.bytes / 2 ** 30)
    rows.push({ figure: `… server CPU for ${kind === 'get' ? 'GET' : 'POST'}`, unit: 'core-s/GiB', tunnel: spread(m.get('tunnel')!.map(processPerGiB(0))) })
    rows.push({ figure: `… agent CPU for ${kind === 'get' ? 'GET' : 'POST'}`, unit: 'core-s/GiB', tunnel: spread(m.get('tunnel')!.map(processPerGiB(1))) })
    const verb = kind === 'get' ? 'Get' : 'Post'
    json[`serverCpuSecPerGiB${verb}`] = r2(medianOf(m, 'tunnel', processPerGiB(0)))
    json[`agentCpuSecPerGiB${verb}`] = r2(medianOf(m, 'tunnel', processPerGiB(1)))
    json[kind === 'get' ? 'getMBps' : 'postMBps'] = Math.round(medianOf(m, 'tunnel', (x) => x.result.MBps))
    json[kind === 'get' ? 'directGetMBps' : 'directPostMBps'] = Math.round(medianOf(m, 'direct', (x) => x.result.MBps))
    if (kind === 'get') json.cpuSecPerGiBGet = r2(medianOf(m, 'tunnel', perGiB))
    if (hasSsh) json[kind === 'get' ? 'sshGetMBps' : 'sshPostMBps'] = Math.round(medianOf(m, 'ssh', (x) => x.result.MBps))
  }

  if (plan.ws) {
    const m = await rotate<WsResult>(progress, 'WebSocket echo, 64-byte messages, 16 in flight', sides, (side) =>
      load.call<WsResult>({ kind: 'ws', target: side.target, durationMs: plan.durationMs, inFlight: 16, size: 64 }, plan.durationMs + 30_000),
    )
    notePeaks(m)
    rows.push(rowOf(m, 'WebSocket echo, 64 B, 16 in flight', 'msg/s', (x) => x.result.messagesPerSec, { higherIsBetter: true }))
    json.wsMsgPerSec = Math.round(medianOf(m, 'tunnel', (x) => x.result.messagesPerSec))
    json.directWsMsgPerSec = Math.round(medianOf(m, 'direct', (x) => x.result.messagesPerSec))
  }

  if (plan.standardClients) {
    const cross = await measureWithStandardClients(sides, progress)
    notePeaks(cross.peaks)
    rows.push(...cross.rows)
    Object.assign(json, cross.json)
  }

  rows.push({ figure: 'relay RSS idle (tunnel: server + agent; ssh: sshd + ssh)', unit: 'MiB', tunnel: one(idleKiB.tunnel / 1024), ...(idleKiB.ssh === undefined ? {} : { ssh: one(idleKiB.ssh / 1024) }) })
  rows.push({ figure: '… peak under any load above', unit: 'MiB', tunnel: one(rssPeak.tunnel / 1024), ...(hasSsh ? { ssh: one(rssPeak.ssh / 1024) } : {}) })
  json.rssIdleMiB = r2(idleKiB.tunnel / 1024)
  json.rssLoadMiB = r2(rssPeak.tunnel / 1024)
  return { rows, json }
}

/**
 * The cross-check with the clients users have: wrk for small GETs and curl for bulk, against the
 * same sides in the same rotation. Where these rows and the generator's disagree, the generator
 * is suspect.
 */
async function measureWithStandardClients(sides: Side[], progress: Progress): Promise<Figures & { peaks: BySide<unknown> }> {
  const rows: Row[] = []
  const json: Record<string, number> = {}
  const peaks = new Map<Side['name'], Array<Measured<unknown>>>()
  const keep = <T>(m: BySide<T>): void => {
    for (const [name, list] of m) peaks.set(name, [...(peaks.get(name) ?? []), ...list])
  }
  const hasSsh = sides.some((s) => s.name === 'ssh')
  if (!wrkInstalled()) progress.note('wrk not measured: it is not installed (apt-get install wrk)')
  else {
    for (const c of [1, 50]) {
      const m = await rotate<WrkResult>(progress, `wrk: 100-byte GET, ${c} connection${c === 1 ? '' : 's'}`, sides, (side) =>
        runWrk({ port: side.target.port, host: side.target.host, path: '/small', connections: c, durationMs: plan.durationMs }),
      )
      keep(m)
      for (const list of m.values()) for (const x of list) if (x.result.errors > 0) throw new Error(`wrk: ${x.result.errors} errors at c=${c}`)
      rows.push(rowOf(m, `wrk: requests/s, 100-byte GET, c=${c}`, 'rps', (x) => x.result.rps, { higherIsBetter: true }))
      rows.push(rowOf(m, `wrk: p50 latency, c=${c}`, 'ms', (x) => x.result.p50Ms, { higherIsBetter: false }))
      rows.push(rowOf(m, `wrk: p99 latency, c=${c}`, 'ms', (x) => x.result.p99Ms, { higherIsBetter: false }))
      rows.push(rowOf(m, `wrk: relay CPU per request, c=${c}`, 'µs', (x) => (sum(x.cpuMs) * 1000) / x.result.requests, { direct: false }))
      if (c === 1) {
        const d = medianOf(m, 'direct', (x) => x.result.p50Ms)
        json.wrkC1AddedMs = Math.round((medianOf(m, 'tunnel', (x) => x.result.p50Ms) - d) * 1000) / 1000
        rows.push({ figure: 'wrk: latency added at p50, c=1', unit: 'ms', tunnel: one(medianOf(m, 'tunnel', (x) => x.result.p50Ms) - d), ...(hasSsh ? { ssh: one(medianOf(m, 'ssh', (x) => x.result.p50Ms) - d) } : {}) })
      } else {
        json.wrkRps = Math.round(medianOf(m, 'tunnel', (x) => x.result.rps))
        json.wrkDirectRps = Math.round(medianOf(m, 'direct', (x) => x.result.rps))
        if (hasSsh) json.wrkSshRps = Math.round(medianOf(m, 'ssh', (x) => x.result.rps))
      }
    }
  }

  if (!curlInstalled()) progress.note('curl not measured: it is not installed')
  else {
    const dir = await mkdtemp(join(tmpdir(), 'apptunnel-bench-curl-'))
    try {
      const upload = join(dir, 'body')
      await writePatternFile(upload, plan.postBytes)
      for (const kind of ['get', 'post'] as const) {
        const bytes = kind === 'get' ? plan.getBytes : plan.postBytes
        const label = kind === 'get' ? `GET ${bytes / 2 ** 20} MiB` : `POST echo ${bytes / 2 ** 20} MiB`
        const m = await rotate<CurlResult>(progress, `curl: ${label}`, sides, (side) => runCurl({ kind, port: side.target.port, host: side.target.host, bytes, uploadFile: upload, timeoutMs: 300_000 }))
        keep(m)
        const perGiB = (x: Measured<CurlResult>): number => sum(x.cpuMs) / 1000 / (bytes / 2 ** 30)
        rows.push(rowOf(m, `curl: ${label}, length checked`, 'MB/s', (x) => x.result.MBps, { higherIsBetter: true }))
        rows.push(rowOf(m, `curl: relay CPU for ${kind === 'get' ? 'GET' : 'POST'}`, 'core-s/GiB', perGiB, { direct: false }))
        json[kind === 'get' ? 'curlGetMBps' : 'curlPostMBps'] = Math.round(medianOf(m, 'tunnel', (x) => x.result.MBps))
        if (hasSsh) json[kind === 'get' ? 'curlSshGetMBps' : 'curlSshPostMBps'] = Math.round(medianOf(m, 'ssh', (x) => x.result.MBps))
      }
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }
  return { rows, json, peaks }
}

const ACCESS_LOG_ROUNDS_ALONE = 8
/** rounds of `--memory-only`: each variant takes each load this many times */
const MEMORY_ROUNDS = 3
/** `--ceilings` (and full runs): rounds, and bytes per transfer through each layer */
const CEILING_ROUNDS = 3
const CEILING_BYTES = 2 ** 30
/** how long the relays sit idle after start before their idle RSS is read */
const IDLE_SETTLE_MS = 2000

/**
 * What `--access-log` costs: two fresh servers, each with its own agent in front of the same app,
 * one writing the access log to a file in its data directory; c=50 small GETs alternate between
 * them round by round (which goes first alternates too). The "direct" column is the tunnel
 * without the log, the "tunnel" column the one with it.
 */
async function measureAccessLog(load: Child, upstreamPort: number, progress: Progress, rounds: number): Promise<Figures> {
  const rows: Row[] = []
  const json: Record<string, number> = {}
  progress.step('starting two tunnels, one with --access-log')
  const plain = await startBenchServer()
  const dataDir = await mkdtemp(join(tmpdir(), 'apptunnel-bench-access-'))
  const withLog = await startBenchServer({ dataDir, args: ['--access-log', join(dataDir, 'access.log')] })
  const agents: ProductProcess[] = []
  try {
    const a = await plain.createTunnel('plain')
    const b = await withLog.createTunnel('logged')
    agents.push(await startBenchAgent(a.key, upstreamPort, 'bench-plain'))
    agents.push(await startBenchAgent(b.key, upstreamPort, 'bench-logged'))
    await waitForStatus(plain, [a.id], 'CONNECTED', 20_000)
    await waitForStatus(withLog, [b.id], 'CONNECTED', 20_000)
    const sides = {
      off: { target: { port: plain.ingressPort, host: a.host }, pids: [plain.proc.pid, agents[0]!.pid], runs: [] as RequestsResult[], serverUs: [] as number[], tunnelUs: [] as number[] },
      on: { target: { port: withLog.ingressPort, host: b.host }, pids: [withLog.proc.pid, agents[1]!.pid], runs: [] as RequestsResult[], serverUs: [] as number[], tunnelUs: [] as number[] },
    }
    for (let round = 0; round < rounds; round++) {
      for (const which of round % 2 === 0 ? (['off', 'on'] as const) : (['on', 'off'] as const)) {
        const side = sides[which]
        progress.step(`100-byte GET, 50 connections · access log ${which} · round ${round + 1}/${rounds}`)
        const [s0, a0] = side.pids.map(cpuMs) as [number, number]
        const res = await load.call<RequestsResult>(
          { kind: 'requests', target: side.target, path: '/small', connections: 50, durationMs: plan.durationMs, warmupMs: plan.warmupMs },
          plan.durationMs + plan.warmupMs + 30_000,
        )
        const [s1, a1] = side.pids.map(cpuMs) as [number, number]
        if (res.errors > 0) throw new Error(`${res.errors} requests failed in the access log rounds`)
        side.runs.push(res)
        side.serverUs.push(((s1 - s0) * 1000) / res.totalRequests)
        side.tunnelUs.push(((s1 - s0 + a1 - a0) * 1000) / res.totalRequests)
      }
    }
    const off = spread(sides.off.runs.map((x) => x.rps))
    const on = spread(sides.on.runs.map((x) => x.rps))
    // Paired by round: each "on" against the "off" measured next to it, so drift of the machine cancels.
    const ratio = spread(sides.on.runs.map((x, i) => x.rps / sides.off.runs[i]!.rps))
    const extraServerUs = spread(sides.on.serverUs.map((x, i) => x - sides.off.serverUs[i]!))
    const logBytes = (await stat(join(dataDir, 'access.log'))).size
    rows.push({ figure: 'access log: requests/s, 100-byte GET, c=50 (direct column: log off; tunnel column: log on)', unit: 'rps', direct: off, tunnel: on, higherIsBetter: true })
    rows.push({ figure: '… p99 latency, log off / on', unit: 'ms', direct: spread(sides.off.runs.map((x) => x.p99Ms)), tunnel: spread(sides.on.runs.map((x) => x.p99Ms)), higherIsBetter: false })
    rows.push({ figure: '… requests/s with the log over without, paired by round', unit: '×', tunnel: ratio })
    rows.push({ figure: '… server CPU per request, log off / on', unit: 'µs', direct: spread(sides.off.serverUs), tunnel: spread(sides.on.serverUs), higherIsBetter: false })
    rows.push({ figure: '… server CPU per request the log adds, paired by round', unit: 'µs', tunnel: extraServerUs })
    rows.push({ figure: '… tunnel CPU per request (server + agent), log off / on', unit: 'µs', direct: spread(sides.off.tunnelUs), tunnel: spread(sides.on.tunnelUs), higherIsBetter: false })
    rows.push({ figure: '… access log written', unit: 'MiB', tunnel: { median: logBytes / 2 ** 20, min: Number.NaN, max: Number.NaN } })
    json.accessLogExtraServerUs = r2(extraServerUs.median)
    json.accessLogRpsRatio = Math.round(ratio.median * 1000) / 1000
    json.accessLogOffRps = Math.round(off.median)
    json.accessLogOnRps = Math.round(on.median)
  } finally {
    for (const p of agents) await p.stop().catch(() => {})
    await plain.dispose().catch(() => {})
    await withLog.dispose().catch(() => {})
  }
  return { rows, json }
}

/**
 * A second, fresh server for the fleet figures: 100 tunnels with one agent each reconnecting after
 * a server restart, then 900 more sessions to see what an idle session costs the server.
 */
async function measureFleet(upstreamPort: number, progress: Progress): Promise<Figures> {
  const rows: Row[] = []
  const json: Record<string, number> = {}
  const server = await startBenchServer()
  const swarm = await forkChild('agent-swarm.ts')
  try {
    const tunnels: Array<{ id: string; key: string; host: string }> = []
    for (let i = 0; i < plan.restartTunnels; i++) tunnels.push(await server.createTunnel(`fleet ${i}`))
    const ids = tunnels.map((t) => t.id)
    swarm.proc.send({ start: tunnels.map((t, i) => ({ key: t.key, nodeId: `fleet-${i}` })), upstreamPort })
    await swarm.waitMessage<{ connected: number }>((m) => m.connected === tunnels.length, 60_000)
    await waitForStatus(server, ids, 'CONNECTED', 30_000)

    progress.step(`restarting the server with ${tunnels.length} connected tunnels`)
    const restart = await server.restart()
    const sinceReady = await waitForStatus(server, ids, 'CONNECTED', 60_000)
    rows.push({ figure: `${tunnels.length} tunnels CONNECTED again after a server restart (from listening)`, unit: 's', tunnel: { median: sinceReady / 1000, min: Number.NaN, max: Number.NaN } })
    rows.push({ figure: `… including the server's own start`, unit: 's', tunnel: { median: (restart.readyMs + sinceReady) / 1000, min: Number.NaN, max: Number.NaN } })
    json.restartReconnectS = r2(sinceReady / 1000)

    progress.step(`opening ${plan.sessions} idle sessions`)
    const extra = plan.sessions - tunnels.length
    await new Promise((r) => setTimeout(r, 2000))
    const before = rssKiB(server.proc.pid)
    swarm.proc.send({ start: Array.from({ length: extra }, (_, i) => ({ key: tunnels[i % tunnels.length]!.key, nodeId: `idle-${i}` })), upstreamPort })
    await swarm.waitMessage<{ connected: number }>((m) => m.connected === plan.sessions, 120_000)
    // Readings just after the last session connected (handshake garbage still on the heap) and
    // once V8's memory reducer has handed back the young generation the handshakes grew (~30 MiB):
    // that came 20 to 45 s after the last connection in runs of this step, so the steady state is
    // the lowest reading within 50 idle seconds.
    await new Promise((r) => setTimeout(r, 3000))
    const early = rssKiB(server.proc.pid)
    const idleCpu0 = cpuMs(server.proc.pid)
    await new Promise((r) => setTimeout(r, 17_000))
    // What idle sessions cost the server while nothing flows: keepalive pings both ways, timers.
    const idleCpuUsPerSessionSecond = ((cpuMs(server.proc.pid) - idleCpu0) * 1000) / plan.sessions / 17
    let after = rssKiB(server.proc.pid)
    for (let waited = 20; waited < 50; waited++) {
      await new Promise((r) => setTimeout(r, 1000))
      after = Math.min(after, rssKiB(server.proc.pid))
    }
    const perSession = (after - before) / extra
    rows.push({ figure: `server RSS per idle session, ${plan.sessions} sessions, lowest within 50 s idle`, unit: 'KiB', tunnel: { median: perSession, min: Number.NaN, max: Number.NaN } })
    rows.push({ figure: `… 3 s after the last one connected`, unit: 'KiB', tunnel: { median: (early - before) / extra, min: Number.NaN, max: Number.NaN } })
    rows.push({ figure: `server RSS with ${plan.sessions} sessions`, unit: 'MiB', tunnel: { median: after / 1024, min: Number.NaN, max: Number.NaN } })
    rows.push({ figure: `server CPU per idle session (pings every 5 s each way)`, unit: 'µs/s', tunnel: { median: idleCpuUsPerSessionSecond, min: Number.NaN, max: Number.NaN } })
    json.idleSessionCpuUsPerS = r2(idleCpuUsPerSessionSecond)
    json.idleSessionKiB = Math.round(perSession)
  } finally {
    swarm.proc.send({ close: true })
    await swarm.waitMessage((m: { closed?: boolean }) => m.closed === true, 30_000).catch(() => {})
    await swarm.stop()
    await server.dispose()
  }
  return { rows, json }
}

async function measureClusterHandshakes(quickRun: boolean): Promise<Figures> {
  const rows: Row[] = []
  const json: Record<string, number> = {}
  // The cluster bus landed with the benchmark suite; import it directly.
  const { benchClusterHandshakes } = await import('./cluster/cluster-bench.ts')
  const one = (v: number): Spread => ({ median: v, min: Number.NaN, max: Number.NaN })
  for (const concurrency of [1, 16]) {
    const r = await benchClusterHandshakes({ count: quickRun ? 500 : 3000, concurrency })
    rows.push({ figure: `cluster-bus handshakes/s (concurrency ${concurrency})`, unit: '/s', tunnel: one(r.handshakesPerSec) })
    rows.push({ figure: `… time to auth p50 / p99, concurrency ${concurrency}`, unit: 'ms', tunnel: one(r.p50Ms), note: `${r.p50Ms.toFixed(2)} / ${r.p99Ms.toFixed(2)}` })
    rows.push({ figure: `… server CPU per handshake, concurrency ${concurrency}`, unit: 'ms', tunnel: one(r.serverCpuMsPerHandshake) })
    if (concurrency === 1) {
      json.clusterAuthP50Ms = r2(r.p50Ms)
      json.clusterAuthP99Ms = r2(r.p99Ms)
      json.clusterServerCpuMs = r2(r.serverCpuMsPerHandshake)
    } else {
      json.clusterHandshakesPerSec = Math.round(r.handshakesPerSec)
    }
  }
  const { benchClusterBusEvents, benchFrameSealing } = await import('./cluster/bus-bench.ts')
  const e = await benchClusterBusEvents({ count: quickRun ? 20_000 : 100_000 })
  rows.push({ figure: 'cluster-bus events/s over one link (1,000 in flight)', unit: '/s', tunnel: one(e.eventsPerSec) })
  rows.push({ figure: '… CPU per event, both ends', unit: 'µs', tunnel: one(e.cpuUsPerEvent) })
  json.clusterBusEventsPerSec = e.eventsPerSec
  json.clusterBusCpuUsPerEvent = e.cpuUsPerEvent
  const [typical] = benchFrameSealing({ count: quickRun ? 50_000 : 200_000 })
  rows.push({ figure: `… bus frame MAC, ${typical!.payloadBytes}-byte event: seal / check`, unit: 'ns', tunnel: one(typical!.sealNsPerFrame), note: `${typical!.sealNsPerFrame} / ${typical!.openNsPerFrame}` })
  json.clusterBusSealNs = typical!.sealNsPerFrame
  json.clusterBusOpenNs = typical!.openNsPerFrame
  return { rows, json }
}


main().catch((err: unknown) => {
  process.stderr.write(`\nbench failed: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exitCode = 1
})

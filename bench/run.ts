/**
 * `npm run bench [-- --quick] [-- --no-write] [-- --profile] [-- --access-log-only]`
 *
 * Starts one upstream app, and a full tunnel (server and agent through the real CLI, each in its
 * own process) in front of it, then measures the direct path and the tunnel in the same run,
 * alternating their order round by round. Prints a table with each tunnel figure's ratio to direct,
 * writes the results into docs/performance.md (full runs), and ends with one JSON line.
 */
import { mkdtemp, stat } from 'node:fs/promises'
import { cpus, totalmem, release, tmpdir } from 'node:os'
import { join } from 'node:path'
import type { BulkResult, Job, RequestsResult, Target, WsResult } from './load-client.ts'
import { forkChild, type Child } from './lib/children.ts'
import { cpuMs, rssKiB, sampleRss } from './lib/proc-stats.ts'
import { Progress } from './lib/progress.ts'
import { spread, type Spread } from './lib/stats.ts'
import { startBenchAgent, startBenchServer, waitForStatus, type BenchServer, type ProductProcess } from './lib/tunnel-processes.ts'
import { renderTable, writePerformanceDoc, type Row } from './lib/report.ts'
import { profileRun } from './lib/profile.ts'
import { sshPeerInstalled, startSshPeer } from './lib/ssh-peer.ts'

const argv = new Set(process.argv.slice(2))
for (const a of argv) {
  if (!['--quick', '--no-write', '--write', '--profile', '--profile-only', '--access-log-only', '--help'].includes(a)) {
    process.stderr.write(`bench: unknown option ${a} (known: --quick, --no-write, --write, --profile, --profile-only, --access-log-only)\n`)
    process.exit(2)
  }
}
if (argv.has('--help')) {
  process.stdout.write('npm run bench [-- --quick] [-- --no-write] [-- --profile | --profile-only | --access-log-only]\n')
  process.exit(0)
}
const quick = argv.has('--quick')
const profileOnly = argv.has('--profile-only')
const profile = profileOnly || argv.has('--profile')
/** only the access log's cost: two fresh tunnels, one with --access-log, alternating at c=50 */
const accessLogOnly = argv.has('--access-log-only')
const write = argv.has('--write') || (!quick && !profileOnly && !accessLogOnly && !argv.has('--no-write'))

const plan = quick
  ? { rounds: 2, concurrency: [1, 50], durationMs: 2500, warmupMs: 500, getBytes: 256 * 2 ** 20, postBytes: 64 * 2 ** 20, ws: false, sessions: 0, restartTunnels: 0, sshPeer: false }
  : { rounds: 3, concurrency: [1, 50, 200], durationMs: 5000, warmupMs: 1000, getBytes: 2 ** 30, postBytes: 256 * 2 ** 20, ws: true, sessions: 1000, restartTunnels: 100, sshPeer: true }

interface Figures {
  rows: Row[]
  json: Record<string, number>
}

async function main(): Promise<void> {
  const steps = profileOnly ? 4 : accessLogOnly ? 2 + ACCESS_LOG_ROUNDS_ALONE * 2 :
    3 +
    plan.rounds * (plan.concurrency.length + 2 + (plan.ws ? 1 : 0) + (plan.sshPeer && sshPeerInstalled() ? 3 : 0)) * 2 +
    (plan.restartTunnels > 0 ? 2 : 0) +
    1 + plan.rounds * 2 * 2 +
    1 +
    (profile ? 2 : 0)
  const progress = new Progress(steps)
  const children: Child[] = []
  const products: ProductProcess[] = []
  let server: BenchServer | undefined
  try {
    progress.step('starting the upstream app and the load client')
    const upstream = await forkChild('upstream-process.ts')
    children.push(upstream)
    const { port: upstreamPort } = await upstream.waitMessage<{ port: number }>((m) => typeof m.port === 'number', 20_000)
    const load = await forkChild('load-client.ts')
    children.push(load)

    if (accessLogOnly) {
      const figures = await measureAccessLog(load, upstreamPort, progress, ACCESS_LOG_ROUNDS_ALONE)
      progress.done()
      process.stdout.write(`\n${renderTable(figures.rows)}\n${JSON.stringify(figures.json)}\n`)
      return
    }
    if (profileOnly) {
      progress.step('profiling server and agent under c=50 small GETs')
      const a = await profileRun({ upstreamPort, load, kind: 'requests', durationMs: 5000 })
      progress.step('profiling server and agent under a 1 GiB GET')
      const b = await profileRun({ upstreamPort, load, kind: 'get', bytes: 2 ** 30 })
      progress.done()
      process.stdout.write(`${a}\n${b}`)
      return
    }
    progress.step('starting the tunnel server (apptunnel server)')
    server = await startBenchServer()
    const tunnel = await server.createTunnel('bench')
    progress.step('starting the agent (apptunnel agent) and waiting for CONNECTED')
    const agent = await startBenchAgent(tunnel.key, upstreamPort, 'bench-node')
    products.push(agent)
    await waitForStatus(server, [tunnel.id], 'CONNECTED', 20_000)

    const direct: Target = { port: upstreamPort, host: `127.0.0.1:${upstreamPort}` }
    const viaTunnel: Target = { port: server.ingressPort, host: tunnel.host }
    const figures = await measureDataPath(load, direct, viaTunnel, server.proc.pid, agent.pid, progress)
    if (plan.sshPeer) {
      const peer = await measureSshPeer(load, direct, upstreamPort, progress)
      figures.rows.push(...peer.rows)
      Object.assign(figures.json, peer.json)
    }

    if (plan.restartTunnels > 0) {
      const fleet = await measureFleet(upstreamPort, progress)
      figures.rows.push(...fleet.rows)
      Object.assign(figures.json, fleet.json)
    }

    const access = await measureAccessLog(load, upstreamPort, progress, plan.rounds * 2)
    figures.rows.push(...access.rows)
    Object.assign(figures.json, access.json)

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

/**
 * Runs a job against two targets round by round, alternating which goes first so warm caches and
 * turbo do not favour one side. `onOther` sees each result of the second target with the CPU the
 * tunnel processes spent on it (for the tunnel itself).
 */
async function alternate<T>(
  load: Child,
  progress: Progress,
  label: string,
  targets: { direct: Target; other: Target; otherName: string; directName?: string },
  job: (t: Target) => Job,
  timeoutMs: number,
  onOther?: (r: T, cpu: { server: number; agent: number }) => void,
  pids?: { server: number; agent: number },
  rounds = plan.rounds,
): Promise<{ direct: T[]; other: T[] }> {
  const out = { direct: [] as T[], other: [] as T[] }
  for (let round = 0; round < rounds; round++) {
    const order: Array<'direct' | 'other'> = round % 2 === 0 ? ['direct', 'other'] : ['other', 'direct']
    for (const which of order) {
      progress.step(`${label} · ${which === 'direct' ? (targets.directName ?? 'direct') : targets.otherName} · round ${round + 1}/${rounds}`)
      const s0 = pids === undefined ? 0 : cpuMs(pids.server)
      const a0 = pids === undefined ? 0 : cpuMs(pids.agent)
      const result = await load.call<T>(job(which === 'direct' ? targets.direct : targets.other), timeoutMs)
      if (which === 'other') onOther?.(result, pids === undefined ? { server: 0, agent: 0 } : { server: cpuMs(pids.server) - s0, agent: cpuMs(pids.agent) - a0 })
      out[which].push(result)
    }
  }
  return out
}

async function measureDataPath(load: Child, direct: Target, tunnel: Target, serverPid: number, agentPid: number, progress: Progress): Promise<Figures> {
  const rows: Row[] = []
  const json: Record<string, number> = {}
  const both = async <T>(label: string, job: (t: Target) => Job, timeoutMs: number, onTunnel?: (r: T, cpu: { server: number; agent: number }) => void): Promise<{ direct: T[]; tunnel: T[] }> => {
    const r = await alternate<T>(load, progress, label, { direct, other: tunnel, otherName: 'tunnel' }, job, timeoutMs, onTunnel, { server: serverPid, agent: agentPid })
    return { direct: r.direct, tunnel: r.other }
  }

  for (const c of plan.concurrency) {
    const cpuPerReq: number[] = []
    const serverPerReq: number[] = []
    const agentPerReq: number[] = []
    let rssPeakKiB = 0
    let sampler: ReturnType<typeof sampleRss> | undefined
    const job = (t: Target): Job => {
      if (c === 50 && t === tunnel) sampler = sampleRss([serverPid, agentPid])
      return { kind: 'requests', target: t, path: '/small', connections: c, durationMs: plan.durationMs, warmupMs: plan.warmupMs }
    }
    const r = await both<RequestsResult>(`100-byte GET, ${c} connection${c === 1 ? '' : 's'}`, job, plan.durationMs + plan.warmupMs + 30_000, (res, cpu) => {
      cpuPerReq.push(((cpu.server + cpu.agent) * 1000) / res.totalRequests)
      serverPerReq.push((cpu.server * 1000) / res.totalRequests)
      agentPerReq.push((cpu.agent * 1000) / res.totalRequests)
      if (sampler !== undefined) rssPeakKiB = Math.max(rssPeakKiB, sampler.stop().peakSumKiB)
      sampler = undefined
    })
    for (const res of [...r.direct, ...r.tunnel]) if (res.errors > 0) throw new Error(`${res.errors} requests failed at c=${c}`)
    const rps = { d: spread(r.direct.map((x) => x.rps)), t: spread(r.tunnel.map((x) => x.rps)) }
    const p50 = { d: spread(r.direct.map((x) => x.p50Ms)), t: spread(r.tunnel.map((x) => x.p50Ms)) }
    const p99 = { d: spread(r.direct.map((x) => x.p99Ms)), t: spread(r.tunnel.map((x) => x.p99Ms)) }
    rows.push({ figure: `requests/s, 100-byte GET, c=${c}`, unit: 'rps', direct: rps.d, tunnel: rps.t, higherIsBetter: true })
    rows.push({ figure: `p50 latency, c=${c}`, unit: 'ms', direct: p50.d, tunnel: p50.t, higherIsBetter: false })
    rows.push({ figure: `p99 latency, c=${c}`, unit: 'ms', direct: p99.d, tunnel: p99.t, higherIsBetter: false })
    rows.push({ figure: `tunnel CPU per request (server + agent), c=${c}`, unit: 'µs', tunnel: spread(cpuPerReq) })
    if (c === 50) {
      rows.push({ figure: `… server CPU per request, c=${c}`, unit: 'µs', tunnel: spread(serverPerReq) })
      rows.push({ figure: `… agent CPU per request, c=${c}`, unit: 'µs', tunnel: spread(agentPerReq) })
    }
    if (c === 1) {
      json.c1P50Ms = r2(p50.t.median)
      json.directC1P50Ms = r2(p50.d.median)
      rows.push({ figure: 'latency added at p50, c=1', unit: 'ms', tunnel: { median: p50.t.median - p50.d.median, min: Number.NaN, max: Number.NaN } })
    }
    if (c === 50) {
      json.rps = Math.round(rps.t.median)
      json.directRps = Math.round(rps.d.median)
      json.p99Ms = r2(p99.t.median)
      json.directP99Ms = r2(p99.d.median)
      json.cpuUsPerRequest = Math.round(spread(cpuPerReq).median)
      json.rssUnderLoadMiB = r2(rssPeakKiB / 1024)
      rows.push({ figure: 'server + agent RSS peak under c=50', unit: 'MiB', tunnel: { median: rssPeakKiB / 1024, min: Number.NaN, max: Number.NaN } })
    }
  }

  for (const kind of ['get', 'post'] as const) {
    const bytes = kind === 'get' ? plan.getBytes : plan.postBytes
    const coreSecPerGB: number[] = []
    const label = kind === 'get' ? `GET ${bytes / 2 ** 20} MiB` : `POST echo ${bytes / 2 ** 20} MiB`
    const r = await both<BulkResult>(label, (t) => ({ kind, target: t, bytes, timeoutMs: 300_000 }), 310_000, (res, cpu) => {
      coreSecPerGB.push((cpu.server + cpu.agent) / 1000 / (res.bytes / 1e9))
    })
    const d = spread(r.direct.map((x) => x.MBps))
    const t = spread(r.tunnel.map((x) => x.MBps))
    rows.push({ figure: `${label}, bytes verified`, unit: 'MB/s', direct: d, tunnel: t, higherIsBetter: true })
    rows.push({ figure: `tunnel CPU for ${kind === 'get' ? 'GET' : 'POST'} (server + agent)`, unit: 'core-s/GB', tunnel: spread(coreSecPerGB) })
    json[kind === 'get' ? 'getMBps' : 'postMBps'] = Math.round(t.median)
    json[kind === 'get' ? 'directGetMBps' : 'directPostMBps'] = Math.round(d.median)
  }

  if (plan.ws) {
    const r = await both<WsResult>('WebSocket echo, 64-byte messages, 16 in flight', (t) => ({ kind: 'ws', target: t, durationMs: plan.durationMs, inFlight: 16, size: 64 }), plan.durationMs + 30_000)
    const d = spread(r.direct.map((x) => x.messagesPerSec))
    const t = spread(r.tunnel.map((x) => x.messagesPerSec))
    rows.push({ figure: 'WebSocket echo, 64 B, 16 in flight', unit: 'msg/s', direct: d, tunnel: t, higherIsBetter: true })
    json.wsMsgPerSec = Math.round(t.median)
    json.directWsMsgPerSec = Math.round(d.median)
  }
  return { rows, json }
}

/**
 * The same requests and bulk transfers through `ssh -R` (when OpenSSH is installed), against direct
 * in the same rounds: the yardstick. In these rows the "tunnel" column holds ssh's figure.
 */
async function measureSshPeer(load: Child, direct: Target, upstreamPort: number, progress: Progress): Promise<Figures> {
  const rows: Row[] = []
  const json: Record<string, number> = {}
  const peer = await startSshPeer(upstreamPort)
  if ('unavailable' in peer) {
    progress.note(`ssh -R not measured: ${peer.unavailable}`)
    return { rows, json }
  }
  try {
    const targets = { direct, other: { port: peer.port, host: `127.0.0.1:${upstreamPort}` }, otherName: peer.label }
    const c50 = await alternate<RequestsResult>(load, progress, `${peer.label}: 100-byte GET, 50 connections`, targets, (t) => ({ kind: 'requests', target: t, path: '/small', connections: 50, durationMs: plan.durationMs, warmupMs: plan.warmupMs }), plan.durationMs + plan.warmupMs + 30_000)
    rows.push({ figure: `${peer.label}: requests/s, 100-byte GET, c=50`, unit: 'rps', direct: spread(c50.direct.map((x) => x.rps)), tunnel: spread(c50.other.map((x) => x.rps)), higherIsBetter: true })
    rows.push({ figure: `${peer.label}: p99 latency, c=50`, unit: 'ms', direct: spread(c50.direct.map((x) => x.p99Ms)), tunnel: spread(c50.other.map((x) => x.p99Ms)), higherIsBetter: false })
    json.sshRps = Math.round(spread(c50.other.map((x) => x.rps)).median)
    for (const kind of ['get', 'post'] as const) {
      const bytes = kind === 'get' ? plan.getBytes : plan.postBytes
      const label = kind === 'get' ? `GET ${bytes / 2 ** 20} MiB` : `POST echo ${bytes / 2 ** 20} MiB`
      const r = await alternate<BulkResult>(load, progress, `${peer.label}: ${label}`, targets, (t) => ({ kind, target: t, bytes, timeoutMs: 300_000 }), 310_000)
      rows.push({ figure: `${peer.label}: ${label}, bytes verified`, unit: 'MB/s', direct: spread(r.direct.map((x) => x.MBps)), tunnel: spread(r.other.map((x) => x.MBps)), higherIsBetter: true })
      json[kind === 'get' ? 'sshGetMBps' : 'sshPostMBps'] = Math.round(spread(r.other.map((x) => x.MBps)).median)
    }
  } finally {
    await peer.stop()
  }
  return { rows, json }
}

const ACCESS_LOG_ROUNDS_ALONE = 8

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
    // Two readings: just after the last session connected (handshake garbage still on the heap)
    // and after 20 idle seconds, once V8's memory reducer has collected: the steady state.
    await new Promise((r) => setTimeout(r, 3000))
    const early = rssKiB(server.proc.pid)
    const idleCpu0 = cpuMs(server.proc.pid)
    await new Promise((r) => setTimeout(r, 17_000))
    const after = rssKiB(server.proc.pid)
    // What idle sessions cost the server while nothing flows: keepalive pings both ways, timers.
    const idleCpuUsPerSessionSecond = ((cpuMs(server.proc.pid) - idleCpu0) * 1000) / plan.sessions / 17
    const perSession = (after - before) / extra
    rows.push({ figure: `server RSS per idle session, ${plan.sessions} sessions, after 20 s idle`, unit: 'KiB', tunnel: { median: perSession, min: Number.NaN, max: Number.NaN } })
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

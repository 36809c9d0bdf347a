/**
 * `npm run bench -- --workers-only`: one server process against `apptunnel server --workers 2`,
 * each with its own agent and tunnel to one app, measured round by round in alternating order:
 * 100-byte GETs at c=50 over keep-alive, and over a new connection per request. The load generator
 * is pinned with taskset to the last CPU; the servers, the agents and the app are left to the
 * scheduler, since two workers pinned to one CPU could not show what a second core gives. Prints
 * each figure for 1 and 2 workers and their ratio.
 */
import { execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { cpus, release, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { callAdminApi, resolveAdminTarget } from '../../src/cli/admin-client.ts'
import type { RequestsResult } from '../load-client.ts'
import { startUpstreamAndLoad, type Child } from './children.ts'
import { cpuMsOf, processTree } from './proc-stats.ts'
import { Progress } from './progress.ts'
import { spread, type Spread } from './stats.ts'
import { startBenchAgent, type ProductProcess } from './tunnel-processes.ts'

const CLI = new URL('../../bin/apptunnel.js', import.meta.url).pathname
const ROUNDS = 5
const DURATION_MS = 5000
const WARMUP_MS = 1000
const CONNECTIONS = 50

interface Setup {
  workers: number
  dataDir: string
  server: ReturnType<typeof spawn>
  agent: ProductProcess
  ingressPort: number
  host: string
}

interface Load {
  name: string
  newConnectionEach: boolean
}

const LOADS: Load[] = [
  { name: 'keep-alive', newConnectionEach: false },
  { name: 'new connection per request', newConnectionEach: true },
]

/** `taskset -a -p -c CPUS PID`: every thread of a running process onto those CPUs. */
function pin(pid: number, cpuList: string): void {
  execFileSync('taskset', ['-a', '-p', '-c', cpuList, String(pid)], { stdio: 'ignore' })
}

function tasksetInstalled(): boolean {
  try {
    execFileSync('taskset', ['-V'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** A free port with the next `count - 1` free too (worker i listens on port + i). */
async function freePorts(count: number): Promise<number> {
  const { createServer } = await import('node:net')
  const free = (port: number): Promise<boolean> =>
    new Promise((resolve) => {
      const s = createServer()
      s.once('error', () => resolve(false))
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)))
    })
  for (;;) {
    const port = 20000 + Math.floor(Math.random() * 10000)
    let ok = true
    for (let i = 0; i < count && ok; i++) ok = await free(port + i)
    if (ok) return port
  }
}

/** A server with `workers` workers, a tunnel and its agent, connected to every worker. */
async function startSetup(workers: number, upstreamPort: number): Promise<Setup> {
  const dataDir = await mkdtemp(join(tmpdir(), `apptunnel-bench-workers-${workers}-`))
  const [apiPort, ingressPort] = [await freePorts(workers), await freePorts(1)]
  const server = spawn(
    process.execPath,
    [CLI, 'server', '--workers', String(workers), '--data-dir', dataDir, '--listen', `127.0.0.1:${apiPort}`, '--ingress-listen', `127.0.0.1:${ingressPort}`, '--cluster-heartbeat-ms', '500', '--log-level', 'warn'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  )
  let output = ''
  server.stderr!.setEncoding('utf8').on('data', (s: string) => (output += s))
  const readyText = workers > 1 ? 'workers share the ingress port' : 'apptunnel server ready'
  const deadline = Date.now() + 30_000
  while (!output.includes(readyText)) {
    if (server.exitCode !== null || Date.now() > deadline) throw new Error(`server with ${workers} workers did not start:\n${output}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  const admin = await resolveAdminTarget({ dataDir })
  const { json } = await callAdminApi(admin, 'POST', '/api/v1/tunnels', { name: `workers-${workers}` })
  const tunnel = json as { id: string; key: string; applicationLinkUrl: string }
  const agent = await startBenchAgent(tunnel.key, upstreamPort, `bench-workers-${workers}`)
  // Measured once the agent holds sessions on every worker: no caller is forwarded between them.
  while (workers > 1) {
    const shown = (await callAdminApi(admin, 'GET', `/api/v1/tunnels/${tunnel.id}`)).json as { otherReplicas?: string[] }
    if ((shown.otherReplicas ?? []).length >= workers - 1) break
    if (Date.now() > deadline) throw new Error(`the agent did not reach all ${workers} workers`)
    await new Promise((r) => setTimeout(r, 100))
  }
  return { workers, dataDir, server, agent, ingressPort, host: new URL(tunnel.applicationLinkUrl).host }
}

async function stopSetup(s: Setup): Promise<void> {
  await s.agent.stop()
  if (s.server.exitCode === null && s.server.signalCode === null) {
    const exited = once(s.server, 'exit')
    s.server.kill('SIGTERM')
    await exited
  }
  await rm(s.dataDir, { recursive: true, force: true })
}

interface Sample {
  rps: number
  serverUsPerRequest: number
  /** the part of it spent in the supervisor (handing connections over); 0 for one worker */
  supervisorUsPerRequest: number
  agentUsPerRequest: number
}

export async function runWorkersBench(): Promise<void> {
  const lastCpu = cpus().length - 1
  const pinned = tasksetInstalled() && lastCpu >= 1
  const progress = new Progress(3 + ROUNDS * LOADS.length * 2)
  const children: Child[] = []
  const setups: Setup[] = []
  try {
    progress.step('starting the upstream app and the load client')
    const { upstreamPort, load } = await startUpstreamAndLoad(children)
    if (pinned) pin(load.pid, String(lastCpu))
    else progress.note('the load generator is not pinned (taskset missing, or one CPU)')
    for (const workers of [1, 2]) {
      progress.step(`starting a server with ${workers} worker${workers === 1 ? '' : 's'}, its agent and tunnel`)
      setups.push(await startSetup(workers, upstreamPort))
    }

    const samples = new Map<string, Sample[]>()
    for (let round = 0; round < ROUNDS; round++) {
      for (const l of LOADS) {
        // Alternating which goes first, so neither always runs on a warmer machine.
        const order = round % 2 === 0 ? setups : [...setups].reverse()
        for (const s of order) {
          progress.step(`${l.name} · ${s.workers} worker${s.workers === 1 ? '' : 's'} · round ${round + 1}/${ROUNDS}`)
          const serverPids = processTree(s.server.pid!)
          const server0 = cpuMsOf(serverPids)
          const supervisor0 = cpuMsOf([s.server.pid!])
          const agent0 = cpuMsOf([s.agent.pid])
          const r = await load.call<RequestsResult>(
            { kind: 'requests', target: { port: s.ingressPort, host: s.host }, path: '/small', connections: CONNECTIONS, durationMs: DURATION_MS, warmupMs: WARMUP_MS, newConnectionEach: l.newConnectionEach },
            DURATION_MS + WARMUP_MS + 60_000,
          )
          if (r.errors > 0) throw new Error(`${r.errors} requests failed (${l.name}, ${s.workers} workers)`)
          const key = `${l.name}/${s.workers}`
          samples.set(key, [
            ...(samples.get(key) ?? []),
            {
              rps: r.rps,
              serverUsPerRequest: ((cpuMsOf(serverPids) - server0) * 1000) / r.totalRequests,
              supervisorUsPerRequest: s.workers === 1 ? 0 : ((cpuMsOf([s.server.pid!]) - supervisor0) * 1000) / r.totalRequests,
              agentUsPerRequest: ((cpuMsOf([s.agent.pid]) - agent0) * 1000) / r.totalRequests,
            },
          ])
        }
      }
    }
    progress.done()

    const machine = `${cpus().length} × ${cpus()[0]?.model.trim() ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${release()}, Node ${process.version}`
    const lines = [
      '',
      'apptunnel benchmark — npm run bench -- --workers-only',
      machine,
      `load generator ${pinned ? `pinned to CPU ${lastCpu}` : 'not pinned'}; server, agent and app unpinned; ${ROUNDS} rounds of ${DURATION_MS / 1000} s, c=${CONNECTIONS}, 100-byte GET; median (min–max)`,
      '',
      '| figure | 1 worker | 2 workers | 2 ÷ 1 |',
      '|---|---|---|---|',
    ]
    const json: Record<string, number> = {}
    for (const l of LOADS) {
      const one = samples.get(`${l.name}/1`)!
      const two = samples.get(`${l.name}/2`)!
      const figure = (label: string, unit: string, pick: (s: Sample) => number, jsonKey: string): void => {
        const a = spread(one.map(pick))
        const b = spread(two.map(pick))
        lines.push(`| ${label}, ${l.name} | ${shown(a)} ${unit} | ${shown(b)} ${unit} | ${(b.median / a.median).toFixed(2)} |`)
        json[`${jsonKey}1`] = Math.round(a.median)
        json[`${jsonKey}2`] = Math.round(b.median)
      }
      const prefix = l.newConnectionEach ? 'newConn' : 'keepAlive'
      figure('requests/s', 'rps', (s) => s.rps, `${prefix}Rps`)
      figure('server CPU per request (supervisor + workers)', 'µs', (s) => s.serverUsPerRequest, `${prefix}ServerUs`)
      const two2 = spread(two.map((s) => s.supervisorUsPerRequest))
      lines.push(`| … of which the supervisor, ${l.name} | — | ${shown(two2)} µs | |`)
      json[`${prefix}SupervisorUs2`] = Math.round(two2.median)
      figure('agent CPU per request', 'µs', (s) => s.agentUsPerRequest, `${prefix}AgentUs`)
    }
    process.stdout.write(lines.join('\n') + '\n\n' + JSON.stringify(json) + '\n')
  } finally {
    for (const s of setups) await stopSetup(s).catch(() => {})
    for (const c of children) await c.stop().catch(() => {})
  }
}

function shown(s: Spread): string {
  const f = (n: number): string => (n >= 100 ? String(Math.round(n)) : n.toFixed(1))
  return `${f(s.median)} (${f(s.min)}–${f(s.max)})`
}

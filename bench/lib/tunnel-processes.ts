import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { callAdminApi, resolveAdminTarget, type AdminTarget } from '../../src/cli/admin-client.ts'

const CLI = new URL('../../bin/apptunnel.js', import.meta.url).pathname

/** A product process started through the real CLI, as an operator would run it. */
export interface ProductProcess {
  readonly child: ChildProcess
  readonly pid: number
  /** stderr lines so far (JSON log lines), for diagnosing a failed run */
  readonly log: string[]
  stop(): Promise<void>
}

function spawnCli(args: string[], extraNodeArgs: string[], readyWhen: (line: string) => boolean, timeoutMs = 20_000, cli = CLI): Promise<ProductProcess> {
  const child = spawn(process.execPath, [...extraNodeArgs, cli, ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
  const log: string[] = []
  let pending = ''
  let resolveReady: () => void = () => {}
  const ready = new Promise<void>((r) => (resolveReady = r))
  child.stderr!.setEncoding('utf8')
  child.stderr!.on('data', (s: string) => {
    pending += s
    let nl: number
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl)
      pending = pending.slice(nl + 1)
      if (log.length < 2000) log.push(line)
      if (readyWhen(line)) resolveReady()
    }
  })
  const proc: ProductProcess = {
    child,
    pid: child.pid!,
    log,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = once(child, 'exit')
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
      await exited
      clearTimeout(timer)
    },
  }
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`apptunnel ${args[0]} not ready within ${timeoutMs} ms:\n${log.slice(-10).join('\n')}`))
    }, timeoutMs)
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`apptunnel ${args[0]} exited with ${code} before it was ready:\n${log.slice(-10).join('\n')}`))
    })
    void ready.then(() => {
      clearTimeout(timer)
      child.removeAllListeners('exit')
      resolve(proc)
    })
  })
}

export interface BenchServer {
  proc: ProductProcess
  dataDir: string
  admin: AdminTarget
  ingressPort: number
  apiPort: number
  createTunnel(name: string): Promise<{ id: string; key: string; host: string }>
  tunnelStatuses(): Promise<Map<string, string>>
  /** SIGTERM, then the same command again on the same ports and data directory */
  restart(): Promise<{ readyMs: number }>
  dispose(): Promise<void>
}

/** `cli`: another checkout's bin/apptunnel.js, to compare a build against this one in one run */
export async function startBenchServer(opts: { nodeArgs?: string[]; dataDir?: string; args?: string[]; cli?: string } = {}): Promise<BenchServer> {
  const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), 'apptunnel-bench-')))
  const listening = (line: string): boolean => line.includes('"tunnel server listening"')
  const args = (api: string, ingress: string): string[] => ['server', '--data-dir', dataDir, '--listen', api, '--ingress-listen', ingress, '--log-level', 'info', ...(opts.args ?? [])]
  let proc = await spawnCli(args('127.0.0.1:0', '127.0.0.1:0'), opts.nodeArgs ?? [], listening, 20_000, opts.cli)
  const admin = await resolveAdminTarget({ dataDir })
  const info = JSON.parse(await (await import('node:fs/promises')).readFile(join(dataDir, 'server.json'), 'utf8')) as { url: string; ingress: string }
  const apiPort = Number(new URL(info.url).port)
  const ingressPort = Number(info.ingress.slice(info.ingress.lastIndexOf(':') + 1))
  const server: BenchServer = {
    get proc() {
      return proc
    },
    dataDir,
    admin,
    ingressPort,
    apiPort,
    async createTunnel(name) {
      const { json } = await callAdminApi(admin, 'POST', '/api/v1/tunnels', { name })
      const t = json as { id: string; key: string; applicationLinkUrl: string }
      return { id: t.id, key: t.key, host: new URL(t.applicationLinkUrl).host }
    },
    async tunnelStatuses() {
      const { json } = await callAdminApi(admin, 'GET', '/api/v1/tunnels')
      const list = (json as { tunnels: Array<{ id: string; status: string }> }).tunnels
      return new Map(list.map((t) => [t.id, t.status]))
    },
    async restart() {
      await proc.stop()
      const t0 = performance.now()
      proc = await spawnCli(args(`127.0.0.1:${apiPort}`, `127.0.0.1:${ingressPort}`), opts.nodeArgs ?? [], listening, 20_000, opts.cli)
      return { readyMs: performance.now() - t0 }
    },
    async dispose() {
      await proc.stop()
      await rm(dataDir, { recursive: true, force: true })
    },
  }
  return server
}

export function startBenchAgent(key: string, upstreamPort: number, nodeId: string, nodeArgs: string[] = [], cli?: string): Promise<ProductProcess> {
  return spawnCli(
    ['agent', '--key', key, '--upstream', `127.0.0.1:${upstreamPort}`, '--node-id', nodeId, '--log-level', 'info'],
    nodeArgs,
    (line) => line.includes('"CONNECTED"'),
    20_000,
    cli,
  )
}

/** Polls the admin API until every given tunnel has the status, or throws after timeoutMs. */
export async function waitForStatus(server: BenchServer, ids: string[], status: string, timeoutMs: number, pollMs = 25): Promise<number> {
  const t0 = performance.now()
  for (;;) {
    const statuses = await server.tunnelStatuses().catch(() => new Map<string, string>())
    if (ids.every((id) => statuses.get(id) === status)) return performance.now() - t0
    if (performance.now() - t0 > timeoutMs) {
      const missing = ids.filter((id) => statuses.get(id) !== status).length
      throw new Error(`${missing} of ${ids.length} tunnels not ${status} within ${timeoutMs} ms`)
    }
    await new Promise((r) => setTimeout(r, pollMs))
  }
}

import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { Agent as HttpAgent, createServer, request, type Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { InstanceAdmin } from '../src/agent/instance/instance-admin.ts'
import type { Database } from '../src/store/index.ts'
import { CLI } from '../src/testing/cli-runner.ts'
import { eventually } from '../src/testing/eventually.ts'
import { checkNoLeakedHandles } from '../src/testing/leak-check.ts'
import { databaseTargets } from '../src/testing/test-databases.ts'
import { startTestServer, type TestServer } from '../src/testing/tunnel-harness.ts'

checkNoLeakedHandles()

// The real cluster case is PostgreSQL; without it (and without APPTUNNEL_REQUIRE_PG=1) SQLite stands in.
const targets = await databaseTargets()
const target = targets.find((t) => t.name === 'postgres' && t.skip === false) ?? targets[0]!

const NODE_NAMES = ['node-a', 'node-b', 'node-c'] as const
const WORKERS = 8
/** bounds of the load loop, whatever happens */
const MAX_REQUESTS = 200_000
const MAX_LOAD_MS = 90_000

/** One node's own app: answers GET /item?id=N with a body derived from N, echoes POST bodies, and counts every POST id it saw. */
interface NodeUpstream {
  name: string
  port: number
  gets: number
  posts: Map<string, number>
  close(): Promise<void>
}

async function startNodeUpstream(name: string): Promise<NodeUpstream> {
  const sockets = new Set<Socket>()
  const self: NodeUpstream = { name, port: 0, gets: 0, posts: new Map(), close: async () => {} }
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://upstream')
    if (req.method === 'GET' && url.pathname === '/item') {
      self.gets++
      res.writeHead(200, { 'content-type': 'text/plain', 'x-node': name }).end(`item ${url.searchParams.get('id')}`)
      return
    }
    if (req.method === 'POST' && url.pathname === '/echo') {
      const id = req.headers['x-request-id'] as string
      self.posts.set(id, (self.posts.get(id) ?? 0) + 1)
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => res.writeHead(200, { 'content-type': 'text/plain', 'x-node': name }).end(Buffer.concat(chunks)))
      return
    }
    res.writeHead(404).end()
  })
  server.on('connection', (s: Socket) => {
    sockets.add(s)
    s.once('close', () => sockets.delete(s))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  self.port = (server.address() as AddressInfo).port
  self.close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy()
      server.close(() => resolve())
    })
  return self
}

interface Outcome {
  kind: 'GET' | 'POST'
  id: string
  ok: boolean
  status: number
  code?: string
  detail?: string
  at: number
}

/** Keep-alive callers hitting the tunnel: half GETs, half POSTs, each answer checked byte for byte. */
class Load {
  readonly outcomes: Outcome[] = []
  #stop = false
  #running: Promise<void>[] = []
  #agent = new HttpAgent({ keepAlive: true, maxSockets: WORKERS })
  #seq = 0

  constructor(
    private readonly port: number,
    private readonly host: string,
  ) {}

  start(): void {
    const started = Date.now()
    for (let w = 0; w < WORKERS; w++) {
      this.#running.push(
        (async () => {
          while (!this.#stop && this.#seq < MAX_REQUESTS && Date.now() - started < MAX_LOAD_MS) {
            const n = ++this.#seq
            this.outcomes.push(await this.#one(n % 2 === 0 ? 'GET' : 'POST', `r${n}`))
          }
        })(),
      )
    }
  }

  async stop(): Promise<void> {
    this.#stop = true
    await Promise.all(this.#running)
    this.#agent.destroy()
  }

  failures(since = 0): Outcome[] {
    return this.outcomes.filter((o) => !o.ok && o.at >= since)
  }

  #one(kind: 'GET' | 'POST', id: string): Promise<Outcome> {
    const body = kind === 'POST' ? Buffer.from(`payload of ${id} `.repeat(20)) : undefined
    return new Promise((resolve) => {
      const done = (o: Omit<Outcome, 'kind' | 'id' | 'at'>): void => resolve({ kind, id, at: Date.now(), ...o })
      const req = request(
        {
          host: '127.0.0.1',
          port: this.port,
          method: kind,
          path: kind === 'GET' ? `/item?id=${id}` : '/echo',
          agent: this.#agent,
          timeout: 15_000,
          headers: { host: this.host, 'x-request-id': id, ...(body === undefined ? {} : { 'content-length': String(body.length) }) },
        },
        (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('error', (err) => done({ ok: false, status: res.statusCode ?? 0, detail: `response error ${err.message}` }))
          res.on('end', () => {
            const got = Buffer.concat(chunks)
            const status = res.statusCode ?? 0
            if (status !== 200) {
              let code: string | undefined
              try {
                code = (JSON.parse(got.toString()) as { error?: { code?: string } }).error?.code
              } catch {
                code = undefined
              }
              return done({ ok: false, status, ...(code === undefined ? {} : { code }), detail: got.toString().slice(0, 200) })
            }
            const expected = kind === 'GET' ? Buffer.from(`item ${id}`) : body!
            if (!got.equals(expected)) return done({ ok: false, status, detail: `wrong body: ${got.toString().slice(0, 80)}` })
            done({ ok: true, status })
          })
        },
      )
      req.on('timeout', () => req.destroy(new Error('timed out')))
      req.on('error', (err: NodeJS.ErrnoException) => done({ ok: false, status: 0, detail: `${err.code ?? ''} ${err.message}` }))
      req.end(body)
    })
  }
}

describe(`on-prem failover under load: three agent processes sharing ${target.name}`, { skip: target.skip }, () => {
  let server: TestServer
  let database: Database
  let dbUrl: string
  let root: string
  let tunnel: Awaited<ReturnType<TestServer['createTunnel']>>
  const upstreams = new Map<string, NodeUpstream>()
  const agents = new Map<string, ChildProcess>()
  const logs = new Map<string, string[]>()

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'apptunnel-failover-'))
    server = await startTestServer({ drainTimeoutMs: 5000 })
    database = await target.open()
    dbUrl = await target.url()
    tunnel = await server.createTunnel('failover')
    await new InstanceAdmin(database).addKey(tunnel.key, 'test')
    for (const name of NODE_NAMES) upstreams.set(name, await startNodeUpstream(name))
  })

  after(async () => {
    for (const child of agents.values()) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await Promise.all([...agents.values()].map((c) => (c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once('exit', r)) : undefined)))
    for (const u of upstreams.values()) await u.close()
    await database?.close()
    await server?.dispose()
    await target.dispose()
    await rm(root, { recursive: true, force: true })
  })

  function spawnNode(name: string): ChildProcess {
    const child = spawn(
      process.execPath,
      [
        CLI,
        'agent',
        '--node-id',
        name,
        '--data-dir',
        join(root, name),
        '--database',
        dbUrl,
        '--upstream',
        `127.0.0.1:${upstreams.get(name)!.port}`,
        '--sessions',
        '2',
        '--key-poll-ms',
        '200',
        '--node-heartbeat-ms',
        '300',
        '--drain-timeout-ms',
        '5000',
        '--log-level',
        'warn',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    )
    const lines: string[] = []
    logs.set(name, lines)
    child.stderr!.setEncoding('utf8').on('data', (s: string) => lines.push(s))
    agents.set(name, child)
    return child
  }

  const liveSessionsOf = (name: string): number => server.registry.sessionsOf(tunnel.id).filter((s) => s.info.nodeId === name && s.isOpen).length

  function exited(child: ChildProcess, timeoutMs: number): Promise<{ code: number | null; signal: string | null }> {
    return new Promise((resolve, reject) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve({ code: child.exitCode, signal: child.signalCode })
      const timer = setTimeout(() => reject(new Error(`agent process did not exit within ${timeoutMs} ms`)), timeoutMs)
      child.once('exit', (code, signal) => {
        clearTimeout(timer)
        resolve({ code, signal })
      })
    })
  }

  function describeFailures(failures: Outcome[]): string {
    return JSON.stringify(failures.slice(0, 5)) + ` … agent logs: ${JSON.stringify(Object.fromEntries([...logs].map(([k, v]) => [k, v.join('').slice(-600)])))}`
  }

  test('rolling restart (SIGTERM one node at a time) and kill -9 of one node under load: no GET fails, nothing runs twice', async () => {
    for (const name of NODE_NAMES) spawnNode(name)
    await eventually(() => NODE_NAMES.every((n) => liveSessionsOf(n) === 2), 'every node has its two sessions', 20_000)

    const load = new Load(server.ingressAddress.port, tunnel.hostHeader)
    let killedAt = 0
    load.start()
    try {
      await eventually(() => load.outcomes.length > 200, 'load running', 10_000)

      // ── rolling restart: make-before-break, so not one request may fail ──
      for (const name of NODE_NAMES) {
        const child = agents.get(name)!
        child.kill('SIGTERM')
        const { code } = await exited(child, 15_000)
        assert.equal(code, 0, `${name} exits cleanly after draining: ${logs.get(name)!.join('')}`)
        spawnNode(name)
        await eventually(() => liveSessionsOf(name) === 2, `${name} back with two sessions`, 20_000)
        const before = load.outcomes.length
        await eventually(() => load.outcomes.length > before + 100, 'traffic after the restart', 10_000)
      }
      const rollingFailures = load.failures()
      assert.deepEqual(rollingFailures, [], `no request failed during the rolling restart: ${describeFailures(rollingFailures)}`)
      const okBefore = load.outcomes.filter((o) => o.ok).length
      assert.ok(okBefore > 500, `enough traffic to mean something (${okBefore})`)

      // The restarted nodes took their share again (balancing moves keep-alive callers between requests).
      const getsBefore = new Map([...upstreams].map(([n, u]) => [n, u.gets]))
      const mark = load.outcomes.length
      await eventually(() => load.outcomes.length > mark + 600, 'more traffic', 15_000)
      for (const [name, u] of upstreams) {
        assert.ok(u.gets - getsBefore.get(name)! > 0, `${name} serves requests after the restarts`)
      }

      // ── kill -9 of one node: GETs are replayed elsewhere, POSTs in flight there may fail ──
      const victim = 'node-b'
      killedAt = Date.now()
      agents.get(victim)!.kill('SIGKILL')
      await exited(agents.get(victim)!, 5000)
      const afterKill = load.outcomes.length
      await eventually(() => load.outcomes.length > afterKill + 300, 'traffic after the kill', 15_000)
    } finally {
      await load.stop()
    }

    const failures = load.failures()
    const failedGets = failures.filter((f) => f.kind === 'GET')
    assert.deepEqual(failedGets, [], `no GET failed (node-b killed at ${killedAt}): ${describeFailures(failedGets)}`)
    const failedPosts = failures.filter((f) => f.kind === 'POST')
    assert.ok(failedPosts.length <= WORKERS, `only requests in flight on the killed node failed (${failedPosts.length})`)
    for (const f of failedPosts) {
      assert.equal(f.status, 502, `a lost POST is answered 502: ${JSON.stringify(f)}`)
      assert.equal(f.code, 'TUN_ERR_SESSION_LOST')
      for (const name of NODE_NAMES.filter((n) => n !== 'node-b')) {
        assert.equal(upstreams.get(name)!.posts.get(f.id), undefined, `failed POST ${f.id} never reached surviving ${name}`)
      }
    }
    // Nothing duplicated: every POST reached at most one upstream, once; every answered POST exactly once.
    const seen = new Map<string, number>()
    for (const u of upstreams.values()) for (const [id, n] of u.posts) seen.set(id, (seen.get(id) ?? 0) + n)
    for (const [id, n] of seen) assert.equal(n, 1, `POST ${id} reached the upstreams ${n} times`)
    for (const o of load.outcomes) if (o.kind === 'POST' && o.ok) assert.equal(seen.get(o.id), 1, `answered POST ${o.id} ran exactly once`)
    process.stderr.write(
      `# failover: ${load.outcomes.length} requests, ${failedPosts.length} POSTs lost with the killed node, GETs per node ${[...upstreams].map(([n, u]) => `${n}=${u.gets}`).join(' ')}\n`,
    )
  })
})

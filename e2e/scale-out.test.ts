import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { Agent as HttpAgent, request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { TunnelAgent } from '../src/agent/start-agent.ts'
import { CLI, cli } from '../src/testing/cli-runner.ts'
import { eventually } from '../src/testing/eventually.ts'
import { checkNoLeakedHandles } from '../src/testing/leak-check.ts'
import { databaseTargets } from '../src/testing/test-databases.ts'
import { startTestUpstream, type TestUpstream } from '../src/testing/test-upstream.ts'
import { ingressRequest, startTestAgent } from '../src/testing/tunnel-harness.ts'
import { decodeSecurityKey, encodeSecurityKey } from '../src/protocol/index.ts'
import { spkiPin } from '../src/transport/certificate-pin.ts'
import { freePort } from '../src/testing/free-port.ts'
import { startTcpForwarder } from '../src/testing/tcp-forwarder.ts'

checkNoLeakedHandles()

// Replicas are a PostgreSQL setup (decision 34); without PostgreSQL (and without
// APPTUNNEL_REQUIRE_PG=1) the suite is skipped with the loud line of the database targets.
const targets = await databaseTargets()
const pg = targets.find((t) => t.name === 'postgres')!

const REPLICAS = ['replica-1', 'replica-2', 'replica-3'] as const
type ReplicaName = (typeof REPLICAS)[number]
const HEARTBEAT_MS = 300
/** bounds of the load loop, whatever happens */
const LOAD_WORKERS = 6
const MAX_REQUESTS = 50_000
const MAX_LOAD_MS = 30_000

interface Replica {
  name: ReplicaName
  dir: string
  apiPort: number
  ingressPort: number
  busPort: number
  child?: ChildProcess
  log: string[]
}

interface TunnelShow {
  id: string
  status: string
  statusReason: string
  sessions: number
  otherReplicas: string[]
}

describe('tunnel server replicas on PostgreSQL: three replicas, two on-prem nodes', { skip: pg.skip }, () => {
  let dbUrl: string
  let root: string
  let upstream: TestUpstream
  let token: string
  const replicas = new Map<ReplicaName, Replica>()
  const agents: TunnelAgent[] = []
  let tunnel: { id: string; key: string }

  async function startReplica(name: ReplicaName): Promise<void> {
    const r = replicas.get(name)!
    r.log.length = 0
    const child = spawn(
      process.execPath,
      [
        CLI,
        'server',
        '--data-dir', r.dir,
        '--listen', `127.0.0.1:${r.apiPort}`,
        '--ingress-listen', `127.0.0.1:${r.ingressPort}`,
        '--database', dbUrl,
        '--cluster-listen', `127.0.0.1:${r.busPort}`,
        '--cluster-node-id', name,
        '--cluster-heartbeat-ms', String(HEARTBEAT_MS),
        '--log-level', 'warn',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    )
    r.child = child
    child.stderr!.setEncoding('utf8').on('data', (s: string) => r.log.push(s))
    await eventually(() => r.log.join('').includes('apptunnel server ready') || child.exitCode !== null, `${name} ready`, 20_000)
    assert.equal(child.exitCode, null, `${name} started: ${r.log.join('')}`)
  }

  async function kill(name: ReplicaName, signal: NodeJS.Signals): Promise<void> {
    const child = replicas.get(name)!.child
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise((r) => child.once('exit', r))
    child.kill(signal)
    await exited
  }

  /** An admin command against one replica's API with the bootstrap token (admin commands work on any replica). */
  async function admin(name: ReplicaName, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const r = replicas.get(name)!
    return cli([...args, '--server', `https://127.0.0.1:${r.apiPort}`, '--token', token, '--ca-file', join(r.dir, 'server.crt')])
  }

  async function show(name: ReplicaName, id: string): Promise<TunnelShow> {
    const res = await admin(name, ['tunnel', 'show', id, '--json'])
    assert.equal(res.code, 0, res.stderr)
    return JSON.parse(res.stdout) as TunnelShow
  }

  let pins: Map<ReplicaName, string> | undefined
  async function loadPins(): Promise<void> {
    pins = new Map()
    for (const name of REPLICAS) pins.set(name, spkiPin(await readFile(join(replicas.get(name)!.dir, 'server.crt'), 'utf8')))
  }
  function pinOf(name: ReplicaName): string {
    return pins!.get(name)!
  }

  function ingressOf(name: ReplicaName): { port: number } {
    return { port: replicas.get(name)!.ingressPort }
  }

  const host = (id: string): string => `${id}.localhost`

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'apptunnel-scale-out-'))
    dbUrl = await pg.url()
    upstream = await startTestUpstream()
    for (const name of REPLICAS) {
      replicas.set(name, { name, dir: join(root, name), apiPort: await freePort(), ingressPort: await freePort(), busPort: await freePort(), log: [] })
    }
    // The first replica bootstraps the organization and its admin token; the others find them.
    await startReplica('replica-1')
    await Promise.all([startReplica('replica-2'), startReplica('replica-3')])
    token = (await readFile(join(replicas.get('replica-1')!.dir, 'admin-token'), 'utf8')).trim()
    const created = await cli(['tunnel', 'create', '--name', 'scale-out', '--data-dir', replicas.get('replica-1')!.dir, '--json'])
    assert.equal(created.code, 0, created.stderr)
    tunnel = JSON.parse(created.stdout) as { id: string; key: string }
    await loadPins()
  })

  after(async () => {
    for (const a of agents) await a.close()
    for (const name of REPLICAS) await kill(name, 'SIGTERM')
    await upstream?.close()
    await pg.dispose()
    await rm(root, { recursive: true, force: true })
  })

  test('a key made on replica 1 brings both nodes onto every replica; every ingress reaches the app', async () => {
    for (const nodeId of ['onprem-1', 'onprem-2']) agents.push(await startTestAgent(tunnel.key, upstream.address, { nodeId, sessions: 1 }))
    for (const a of agents) await a.waitFor((s) => s.status === 'CONNECTED', 10_000)
    for (const name of REPLICAS) {
      await eventually(async () => (await show(name, tunnel.id)).sessions === 2, `${name} holds a session of each node`, 15_000)
    }
    for (const a of agents) assert.equal(a.sessions!.endpoints.length, 3, `${a.nodeId} keeps sessions to the three replicas: ${a.sessions!.endpoints.join(', ')}`)
    for (const name of REPLICAS) {
      const res = await ingressRequest(ingressOf(name), host(tunnel.id), { path: '/hello' })
      assert.equal(res.status, 200, `${name}: ${res.body.toString()}`)
      const s = await show(name, tunnel.id)
      assert.equal(s.status, 'CONNECTED')
      assert.deepEqual([...s.otherReplicas].sort(), REPLICAS.filter((n) => n !== name), `${name} sees the others holding sessions too`)
    }
  })

  test('a linked product added on replica 2 is enforced by replica 3 within a second', async () => {
    const added = await admin('replica-2', ['tunnel', 'product', 'add', tunnel.id, '--name', 'Cloud product', '--json'])
    assert.equal(added.code, 0, added.stderr)
    const product = JSON.parse(added.stdout) as { id: string; credentialValue: string }
    const addedAt = Date.now()
    await eventually(async () => (await ingressRequest(ingressOf('replica-3'), host(tunnel.id))).status === 403, 'replica 3 refuses callers without the credential', 1000)
    assert.ok(Date.now() - addedAt < 1000)
    const withCredential = await ingressRequest(ingressOf('replica-3'), host(tunnel.id), { headers: { 'x-apptunnel-credential': product.credentialValue } })
    assert.equal(withCredential.status, 200)
    const removed = await admin('replica-3', ['tunnel', 'product', 'remove', tunnel.id, product.id])
    assert.equal(removed.code, 0, removed.stderr)
    await eventually(async () => (await ingressRequest(ingressOf('replica-1'), host(tunnel.id))).status === 200, 'replica 1 lets every caller in again', 1000)
  })

  test('replica 3 killed under a GET load: nothing fails through replicas 1 and 2, the nodes stay CONNECTED; restarted, the nodes come back to it', async () => {
    const outcomes: Array<{ ok: boolean; detail: string }> = []
    let stop = false
    const keepAlive = new HttpAgent({ keepAlive: true, maxSockets: LOAD_WORKERS })
    const started = Date.now()
    const workers = Array.from({ length: LOAD_WORKERS }, (_, w) =>
      (async () => {
        const via: ReplicaName = w % 2 === 0 ? 'replica-1' : 'replica-2'
        while (!stop && outcomes.length < MAX_REQUESTS && Date.now() - started < MAX_LOAD_MS) {
          outcomes.push(await get(ingressOf(via).port, host(tunnel.id), keepAlive))
        }
      })(),
    )
    try {
      await eventually(() => outcomes.length > 200, 'load running', 10_000)
      await kill('replica-3', 'SIGKILL')
      const killedAt = outcomes.length
      // Long enough for replica 3 to fall out of the live list (three heartbeats) and for the nodes to let it go.
      await eventually(() => agents.every((a) => a.sessions!.endpoints.length === 2), 'the nodes dropped the dead replica', 10_000)
      await eventually(() => outcomes.length > killedAt + 500, 'load ran on after the kill', 10_000)
      for (const a of agents) assert.equal(a.status.status, 'CONNECTED', `${a.nodeId}: ${a.status.reason}`)
    } finally {
      stop = true
      await Promise.all(workers)
      keepAlive.destroy()
    }
    const failed = outcomes.filter((o) => !o.ok)
    assert.deepEqual(failed.slice(0, 5), [], `${failed.length} of ${outcomes.length} requests failed`)

    await startReplica('replica-3')
    await eventually(async () => (await show('replica-3', tunnel.id)).sessions === 2, 'both nodes are back on replica 3', 15_000)
    const res = await ingressRequest(ingressOf('replica-3'), host(tunnel.id))
    assert.equal(res.status, 200)
    // Replicas see the restarted one come back each at its own heartbeat and bus link: wait for both nodes to settle.
    await eventually(() => agents.every((a) => a.sessions!.endpoints.length === 3), 'both nodes keep sessions to the three replicas again', 10_000)
  })

  test('an agent with --replicas 1 keeps sessions to one replica only; the others call the tunnel CONNECTED and forward its callers', async () => {
    const created = await admin('replica-2', ['tunnel', 'create', '--name', 'one replica', '--json'])
    assert.equal(created.code, 0, created.stderr)
    const t = JSON.parse(created.stdout) as { id: string; key: string }
    const agent = await startTestAgent(t.key, upstream.address, { nodeId: 'onprem-single', sessions: 1, replicas: 1 })
    agents.push(agent)
    await agent.waitFor((s) => s.status === 'CONNECTED', 10_000)
    await eventually(() => agent.sessions!.endpoints.length === 1 && agent.status.status === 'CONNECTED', 'one replica kept', 10_000)
    const views = await Promise.all(REPLICAS.map(async (name) => [name, await show(name, t.id)] as const))
    const holding = views.filter(([, v]) => v.sessions > 0).map(([name]) => name)
    assert.equal(holding.length, 1, `exactly one replica holds the session: ${JSON.stringify(views)}`)
    for (const [name, v] of views) {
      assert.equal(v.status, 'CONNECTED', `${name}: ${v.statusReason}`)
      if (name !== holding[0]) assert.match(v.statusReason, new RegExp(`connected through replica ${holding[0]}, not through this one`))
    }
    // The replicas without its session forward callers to the one that has it (decision 37).
    for (const other of REPLICAS.filter((n) => n !== holding[0])) {
      const res = await ingressRequest(ingressOf(other), host(t.id))
      assert.equal(res.status, 200, `${other}: ${res.body.toString()}`)
    }
  })

  test('a key naming a load balancer in front of the replicas: the node goes in through it, then keeps to the replicas and lets the balancer go', async () => {
    // A plain TCP balancer with one backend: TLS (and the pin) stay end to end with replica 1.
    const balancer = await startTcpForwarder(replicas.get('replica-1')!.apiPort)
    const lbUrl = balancer.url
    try {
      const created = await admin('replica-3', ['tunnel', 'create', '--name', 'behind a balancer', '--json'])
      assert.equal(created.code, 0, created.stderr)
      const t = JSON.parse(created.stdout) as { id: string; key: string }
      const viaBalancer = encodeSecurityKey({ ...decodeSecurityKey(t.key), serverUrl: lbUrl, certificatePin: pinOf('replica-1') })
      const agent = await startTestAgent(viaBalancer, upstream.address, { nodeId: 'onprem-lb', sessions: 1 })
      agents.push(agent)
      await agent.waitFor((s) => s.status === 'CONNECTED', 10_000)
      const replicaUrls = REPLICAS.map((n) => `https://127.0.0.1:${replicas.get(n)!.apiPort}`).sort()
      await eventually(() => JSON.stringify([...agent.sessions!.endpoints].sort()) === JSON.stringify(replicaUrls), 'the balancer session let go, one per replica kept', 10_000)
      for (const name of REPLICAS) await eventually(async () => (await show(name, t.id)).sessions === 1, `${name} holds the node's session`, 10_000)
      assert.equal(agent.status.status, 'CONNECTED')
    } finally {
      await balancer.close()
    }
  })

  test('a tunnel deleted on replica 1 is refused on replicas 2 and 3 within a second', async () => {
    const deleted = await admin('replica-1', ['tunnel', 'delete', tunnel.id])
    assert.equal(deleted.code, 0, deleted.stderr)
    const deletedAt = Date.now()
    for (const name of ['replica-2', 'replica-3'] as const) {
      await eventually(async () => (await ingressRequest(ingressOf(name), host(tunnel.id))).status === 404, `${name} refuses the deleted tunnel`, 1000)
    }
    assert.ok(Date.now() - deletedAt < 1000, `refused within ${Date.now() - deletedAt} ms`)
    for (const a of agents.slice(0, 2)) await a.waitFor((s) => s.status === 'ERROR', 5000)
  })
})

/** One GET with its answer checked; a failure says what came back. */
function get(port: number, hostHeader: string, agent: HttpAgent): Promise<{ ok: boolean; detail: string }> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/hello', agent, timeout: 10_000, headers: { host: hostHeader } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('error', (err) => resolve({ ok: false, detail: `response error ${err.message}` }))
      res.on('end', () => resolve({ ok: res.statusCode === 200, detail: `${res.statusCode} ${Buffer.concat(chunks).toString().slice(0, 200)}` }))
    })
    req.on('timeout', () => req.destroy(new Error('timed out')))
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ ok: false, detail: `${err.code ?? ''} ${err.message}` }))
    req.end()
  })
}

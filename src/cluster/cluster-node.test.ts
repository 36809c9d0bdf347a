import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { connect, createServer, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, afterEach, before, describe, test } from 'node:test'
import { silentLogger } from '../observability/index.ts'
import { ClusterNodeRepository, SecurityPropertyRepository, openDatabase, type Database } from '../store/index.ts'
import { checkNoLeakedHandles } from '../testing/leak-check.ts'
import { CLUSTER_KEY_PROPERTY, startClusterNode, type ClusterNode, type ClusterNodeOptions } from './index.ts'
import { eventually } from '../testing/eventually.ts'
import { testClusterNodeOptions } from '../testing/cluster-options.ts'

checkNoLeakedHandles()

const options = testClusterNodeOptions

/** A TCP relay standing in for the network between two nodes: `cut()` breaks every connection through it. */
async function relayTo(): Promise<{ port: number; target: { port: number }; cut(): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>()
  const target = { port: 0 }
  const server = createServer((inbound) => {
    const outbound = connect({ host: '127.0.0.1', port: target.port })
    for (const s of [inbound, outbound]) {
      sockets.add(s)
      s.on('error', () => {})
      s.once('close', () => sockets.delete(s))
    }
    inbound.pipe(outbound)
    outbound.pipe(inbound)
    inbound.on('close', () => outbound.destroy())
    outbound.on('close', () => inbound.destroy())
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    port: (server.address() as { port: number }).port,
    target,
    cut: () => {
      for (const s of sockets) s.destroy()
    },
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise((r) => server.close(r))
    },
  }
}

describe('cluster node on SQLite (nodes on one host)', () => {
  let dir: string
  let database: Database
  const nodes: ClusterNode[] = []

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'apptunnel-cluster-'))
    database = await openDatabase(join(dir, 'cluster.db'))
  })
  // Each test ends with no node running, even when it fails half-way: the next one must not see them.
  afterEach(async () => {
    for (const n of nodes.splice(0)) await n.close()
  })
  after(async () => {
    await database.close()
    await rm(dir, { recursive: true, force: true })
  })

  async function start(nodeId: string, overrides: Partial<ClusterNodeOptions> = {}, db: Database = database): Promise<ClusterNode> {
    const node = await startClusterNode(options(nodeId, overrides), { database: db, log: silentLogger() })
    nodes.push(node)
    return node
  }

  function meshed(group: ClusterNode[]): boolean {
    return group.every((n) => {
      const peers = new Set(n.status().links.map((l) => l.peerId))
      return group.every((m) => m === n || peers.has(m.nodeId))
    })
  }

  test('three nodes form a full mesh, one authenticated link per pair, and events reach every other node', async () => {
    const [a, b, c] = [await start('node-a'), await start('node-b'), await start('node-c')]
    await eventually(() => meshed([a, b, c]), 'full mesh')
    for (const n of [a, b, c]) {
      const links = n.status().links
      assert.equal(links.length, 2)
      for (const l of links) {
        assert.equal(l.kid, n.keys.current()!.kidHex)
        // The smaller id dials: a dials b and c, b dials c.
        assert.equal(l.direction, n.nodeId < l.peerId ? 'outbound' : 'inbound')
      }
    }
    const got: Record<string, Array<[string, string]>> = { 'node-a': [], 'node-b': [], 'node-c': [] }
    for (const n of [a, b, c]) n.subscribe('tunnel.changed', (e, meta) => got[n.nodeId]!.push([meta.from, e.tunnelId]))
    b.publish('tunnel.changed', { tunnelId: 't1', change: 'deleted' })
    await eventually(() => got['node-a']!.length === 1 && got['node-c']!.length === 1, 'delivery')
    assert.deepEqual(got, { 'node-a': [['node-b', 't1']], 'node-b': [], 'node-c': [['node-b', 't1']] })
    assert.throws(() => a.publish('tunnel.changed', { tunnelId: '', change: 'deleted' }), /invalid tunnel.changed event/)

    // Registered with address and heartbeat; the status JSON carries links and statistics.
    const rows = await new ClusterNodeRepository(database).list('server')
    assert.deepEqual(rows.map((r) => r.id), ['node-a', 'node-b', 'node-c'])
    await a.refreshMembership()
    const row = (await new ClusterNodeRepository(database).get('node-a'))!
    assert.equal(row.address, a.address)
    const status = row.status as { links: unknown[]; authStats: { client: { authsSuccess: number } } }
    assert.equal(status.links.length, 2)
    assert.ok(status.authStats.client.authsSuccess >= 2)
    assert.match(a.renderMetrics(), /apptunnel_cluster_auths_success_total\{side="client",node="node-a"\} \d+/)

  })

  test('a link cut mid-stream loses no event and delivers none twice (at-least-once, duplicates dropped)', async () => {
    const relay = await relayTo()
    try {
      const low = await start('link-a')
      // link-b is reached through the relay: link-a dials it because "link-a" < "link-b".
      const high = await start('link-b', { advertise: `127.0.0.1:${relay.port}` })
      relay.target.port = high.listenAddress.port
      await eventually(() => meshed([low, high]), 'linked')
      const received: number[] = []
      high.subscribe('node.status', (e) => received.push(Number(e.reason)))
      for (let i = 1; i <= 300; i++) {
        low.publish('node.status', { nodeId: 'link-a', status: 'CONNECTED', reason: String(i) })
        if (i % 50 === 0) {
          relay.cut()
          await new Promise((r) => setTimeout(r, 5))
        }
      }
      await eventually(() => received.length >= 300 && (low.status().backlog['link-b'] ?? 1) === 0, 'all 300 delivered and acknowledged', 10_000)
      assert.deepEqual(received, Array.from({ length: 300 }, (_, i) => i + 1), 'every event once, in order')
      assert.ok(low.stats.client.total().authsSuccess >= 2, 'the link re-authenticated after the cuts')
    } finally {
        await relay.close()
    }
  })

  test('a bus frame over the limit drops the link (the peer reconnects; the oversize event is not delivered)', async () => {
    const small = await start('size-a', { maxFrameBytes: 1024 })
    const big = await start('size-b')
    await eventually(() => meshed([small, big]), 'linked')
    const got: string[] = []
    small.subscribe('node.status', (e) => got.push(e.reason.length > 100 ? 'big' : e.reason))
    const before = small.stats.server.total().authsSuccess + small.stats.client.total().authsSuccess
    big.publish('node.status', { nodeId: 'size-b', status: 'X', reason: '€'.repeat(500) })
    await eventually(() => small.stats.server.total().authsSuccess + small.stats.client.total().authsSuccess > before, 'relinked after the oversize frame')
    assert.deepEqual(got, [])
  })

  test('a node that leaves is dropped by the others; its id can then be reused elsewhere, but not while it lives', async () => {
    const a = await start('leave-a')
    const b = await start('leave-b')
    await eventually(() => meshed([a, b]), 'linked')
    await assert.rejects(start('leave-b'), { code: 'TUN_ERR_CLUSTER_NODE_ID_TAKEN' })
    await b.close()
    await eventually(() => a.status().links.length === 0, 'link gone')
    assert.equal(await new ClusterNodeRepository(database).get('leave-b'), undefined, 'the row is removed on close')
    const again = await start('leave-b')
    await eventually(() => meshed([a, again]), 'relinked')
  })

  test('key rotation: links move to the new key after the grace; no link stays on a retired key', async () => {
    const a = await start('rot-a')
    const b = await start('rot-b')
    await eventually(() => meshed([a, b]), 'linked')
    const oldKid = a.keys.current()!.kidHex
    await new SecurityPropertyRepository(database).delete(CLUSTER_KEY_PROPERTY)
    await eventually(() => a.keys.current()?.kidHex !== oldKid && b.keys.current()?.kidHex === a.keys.current()?.kidHex, 'both nodes on the new key')
    const newKid = a.keys.current()!.kidHex
    await eventually(() => meshed([a, b]) && [a, b].every((n) => n.status().links.every((l) => l.kid === newKid)), 'links re-authenticated with the new key', 5000)
    assert.equal(a.stats.server.total().authsSkippedNoSecret + a.stats.client.total().authsSkippedNoSecret, 0)
  })

  test('an empty key disables authentication at run time; deleting the row re-enables it and unauthenticated links are closed', async () => {
    const props = new SecurityPropertyRepository(database)
    const a = await start('off-a')
    const b = await start('off-b')
    await eventually(() => meshed([a, b]), 'linked')
    await props.set(CLUSTER_KEY_PROPERTY, '')
    await eventually(() => a.keys.mode === 'disabled-at-run-time' && b.keys.mode === 'disabled-at-run-time', 'both disabled')
    assert.ok(a.status().links.every((l) => l.kid !== null), 'links proven before stay up')
    // A node joining now links without authentication, on both sides.
    const c = await start('off-c')
    await eventually(() => meshed([a, b, c]), 'c linked')
    assert.ok(c.status().links.every((l) => l.kid === null))
    assert.ok(c.stats.server.total().authsSkippedNoSecret + c.stats.client.total().authsSkippedNoSecret >= 2)

    await props.delete(CLUSTER_KEY_PROPERTY)
    await eventually(() => [a, b, c].every((n) => n.keys.mode === 'enabled' && n.keys.current()?.kidHex === a.keys.current()?.kidHex), 'all re-enabled on one key')
    const kid = a.keys.current()!.kidHex
    await eventually(() => meshed([a, b, c]) && [a, b, c].every((n) => n.status().links.every((l) => l.kid === kid)), 'only authenticated links remain')
  })

  test('--cluster-auth-disabled on every node: the bus works without handshakes being authenticated', async () => {
    const a = await start('dis-a', { authDisabled: true })
    const b = await start('dis-b', { authDisabled: true })
    await eventually(() => meshed([a, b]), 'linked')
    assert.deepEqual(a.status().links.map((l) => l.kid), [null])
    assert.equal(a.stats.client.total().authsSkippedNoSecret, 1)
    // A node that has the key refuses them both.
    const keyed = await start('dis-c')
    await eventually(() => keyed.stats.server.total().authsFailed >= 2, 'both disabled nodes tried and were refused')
    assert.equal(keyed.status().links.length, 0)
    assert.equal(keyed.stats.server.total().authsSkippedNoSecret, 0)
  })
})

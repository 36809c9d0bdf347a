import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { startClusterNode } from '../../cluster/index.ts'
import { loadAgentConfig } from '../../config/agent-config.ts'
import { silentLogger } from '../../observability/index.ts'
import { InstanceKeyRepository, openDatabase } from '../../store/index.ts'
import { decodeSecurityKey } from '../../protocol/index.ts'
import { eventually } from '../../testing/eventually.ts'
import { checkNoLeakedHandles } from '../../testing/leak-check.ts'
import { startTestServer, type TestServer } from '../../testing/tunnel-harness.ts'
import type { AgentConnectorOptions } from '../connector/agent-connector.ts'
import { startInstanceMember } from './instance-member.ts'
import { testClusterNodeOptions } from '../../testing/cluster-options.ts'
import { testConnectorOptions } from '../../testing/connector-options.ts'

// An agent node as a member of an on-prem instance, started alone (without startAgent) against a
// real server on loopback and a SQLite instance database.

checkNoLeakedHandles()

describe('an agent node as a member of an on-prem instance', () => {
  let server: TestServer
  let dir: string
  before(async () => {
    server = await startTestServer()
    dir = await mkdtemp(join(tmpdir(), 'apptunnel-member-'))
  })
  after(async () => {
    await server.dispose()
    await rm(dir, { recursive: true, force: true })
  })

  const connector = (nodeId: string): Omit<AgentConnectorOptions, 'key'> => testConnectorOptions(server.certificatePem, nodeId)

  test('without a key it waits for one (status null); a --key given is stored in the instance and the node connects with it', async () => {
    const db = join(dir, 'instance-1.db')
    const waiting = await startInstanceMember(loadAgentConfig({ database: db, nodeId: 'member-a', upstream: '127.0.0.1:9', logLevel: 'silent' }), db, connector('member-a'), { nodeId: 'member-a', version: 'test', log: silentLogger() })
    try {
      assert.deepEqual({ status: waiting.status().status, reason: waiting.status().reason }, { status: null, reason: 'waiting for a security key' })
      assert.equal(waiting.cluster, undefined)
      assert.equal(waiting.console, undefined)
    } finally {
      await waiting.node.close()
      await waiting.database.close()
    }
    const { key } = await server.createTunnel('member')
    const member = await startInstanceMember(
      loadAgentConfig({ database: db, nodeId: 'member-a', key, upstream: '127.0.0.1:9', keyPollMs: 100, logLevel: 'silent' }),
      db,
      connector('member-a'),
      { nodeId: 'member-a', version: 'test', log: silentLogger() },
    )
    try {
      await eventually(() => member.status().status === 'CONNECTED', 'connected with the stored key')
      const stored = await new InstanceKeyRepository(member.database).get()
      assert.equal(stored?.tunnelId, decodeSecurityKey(key).tunnelId, 'the key is in the instance database')
    } finally {
      await member.node.close()
      await member.database.close()
    }
  })

  test("with clusterListen, each status change goes to the instance's other nodes on the cluster bus", async () => {
    const db = join(dir, 'instance-2.db')
    const peerDb = await openDatabase(db)
    const peer = await startClusterNode(
      testClusterNodeOptions('member-peer', { kind: 'agent' }),
      { database: peerDb, log: silentLogger() },
    )
    const heard: Array<{ nodeId: string; status: string }> = []
    peer.subscribe('node.status', (e) => heard.push({ nodeId: e.nodeId, status: e.status }))
    const { key } = await server.createTunnel('member on a bus')
    const member = await startInstanceMember(
      loadAgentConfig({ database: db, nodeId: 'member-b', key, upstream: '127.0.0.1:9', clusterListen: '127.0.0.1:0', clusterHeartbeatMs: 100, logLevel: 'silent' }),
      db,
      connector('member-b'),
      { nodeId: 'member-b', version: 'test', log: silentLogger() },
    )
    try {
      assert.ok(member.cluster !== undefined)
      await eventually(() => member.status().status === 'CONNECTED', 'connected')
      await eventually(() => heard.some((h) => h.nodeId === 'member-b' && h.status === 'CONNECTED'), 'the peer hears CONNECTED', 10_000)
    } finally {
      await member.node.close()
      await member.cluster?.close()
      await member.database.close()
      await peer.close()
      await peerDb.close()
    }
  })
})

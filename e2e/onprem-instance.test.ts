import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { startAgent, type TunnelAgent } from '../src/agent/start-agent.ts'
import { InstanceAdmin } from '../src/agent/instance/instance-admin.ts'
import type { InstanceStatusView } from '../src/agent/instance/instance-status.ts'
import { loadAgentConfig } from '../src/config/agent-config.ts'
import { decodeSecurityKey, encodeSecurityKey } from '../src/protocol/index.ts'
import { InstanceKeyRepository, type Database } from '../src/store/index.ts'
import { cli } from '../src/testing/cli-runner.ts'
import { eventually } from '../src/testing/eventually.ts'
import { checkNoLeakedHandles } from '../src/testing/leak-check.ts'
import { databaseTargets } from '../src/testing/test-databases.ts'
import { startTestUpstream, type TestUpstream } from '../src/testing/test-upstream.ts'
import { ingressRequest, startTestServer, type TestServer } from '../src/testing/tunnel-harness.ts'

checkNoLeakedHandles()

const targets = await databaseTargets()

for (const target of targets) {
  describe(`on-prem instance: three agent nodes sharing ${target.name}`, { skip: target.skip }, () => {
    let server: TestServer
    let upstream: TestUpstream
    let database: Database
    let admin: InstanceAdmin
    let dbUrl: string
    let root: string
    let tunnel: Awaited<ReturnType<TestServer['createTunnel']>>
    const nodes = new Map<string, TunnelAgent>()
    const ids: string[] = []

    before(async () => {
      root = await mkdtemp(join(tmpdir(), 'apptunnel-instance-'))
      server = await startTestServer({ orgName: 'Acme' })
      upstream = await startTestUpstream()
      // Migrated once here, as an installer would, before the nodes open it together.
      database = await target.open()
      admin = new InstanceAdmin(database)
      dbUrl = await target.url()
      tunnel = await server.createTunnel('onprem')
    })

    after(async () => {
      for (const n of nodes.values()) await n.close()
      await database?.close()
      await server?.dispose()
      await upstream?.close()
      await target.dispose()
      await rm(root, { recursive: true, force: true })
    })

    /** Starts the agent of node `name` (its own data directory, the shared database, no --key). */
    async function startNode(name: string): Promise<TunnelAgent> {
      const agent = await startAgent(
        loadAgentConfig({
          upstream: upstream.address,
          database: dbUrl,
          dataDir: join(root, name),
          sessions: 2,
          keyPollMs: 100,
          nodeHeartbeatMs: 150,
          connectGraceMs: 300,
          reconnectInitialMs: 50,
          reconnectMaxMs: 300,
          logLevel: 'silent',
        }),
      )
      nodes.set(name, agent)
      return agent
    }

    async function stopNode(name: string): Promise<void> {
      await nodes.get(name)!.close()
      nodes.delete(name)
    }

    const instanceStatus = (): Promise<InstanceStatusView> => admin.status()
    const statusIs = (want: string) => async () => (await instanceStatus()).status === want
    const allNodes = (want: string | null) => () => [...nodes.values()].every((n) => n.status.status === want)

    test('nodes without a key wait for one; the instance shows no tunnel and every node', async () => {
      for (const name of ['n1', 'n2', 'n3']) ids.push((await startNode(name)).nodeId)
      assert.equal(new Set(ids).size, 3, 'each data directory holds its own node id')
      await eventually(async () => (await instanceStatus()).nodes.length === 3, 'three nodes registered')
      const view = await instanceStatus()
      assert.equal(view.status, null)
      assert.match(view.reason, /no security key/)
      assert.deepEqual(
        view.nodes.map((n) => [n.status, n.reason, n.online]),
        [
          [null, 'waiting for a security key', true],
          [null, 'waiting for a security key', true],
          [null, 'waiting for a security key', true],
        ],
      )
      assert.ok(allNodes(null)())
    })

    test('key add on one node: all three connect with two sessions each, and the server sees 3 nodes / 6 sessions', async () => {
      const added = await cli(['key', 'add', tunnel.key, '--database', dbUrl])
      assert.equal(added.code, 0, added.stderr)
      assert.match(added.stdout, new RegExp(`Security key added for tunnel ${tunnel.id}`))
      await eventually(allNodes('CONNECTED'), 'every node CONNECTED')
      await eventually(() => [...nodes.values()].every((n) => n.status.sessions === 2), 'two sessions per node')
      await eventually(statusIs('CONNECTED'), 'instance CONNECTED')

      const shown = await cli(['key', 'status', '--database', dbUrl, '--json'])
      assert.equal(shown.code, 0, shown.stderr)
      const json = JSON.parse(shown.stdout) as {
        status: string
        reason: string
        tunnel: { id: string; name: string; connectedTo: string; applicationLinkUrl: string }
        nodes: Array<{ id: string; status: string; reason: string; sessions: number; lastHeartbeat: string }>
      }
      assert.equal(json.status, 'CONNECTED')
      assert.match(json.reason, /all 3 nodes are connected \(6 sessions\)/)
      assert.equal(json.tunnel.id, tunnel.id)
      assert.equal(json.tunnel.name, 'onprem')
      assert.equal(json.tunnel.connectedTo, 'Acme')
      assert.equal(json.tunnel.applicationLinkUrl, tunnel.applicationLinkUrl)
      assert.deepEqual(json.nodes.map((n) => n.id).sort(), [...ids].sort())
      for (const n of json.nodes) {
        assert.equal(n.status, 'CONNECTED')
        assert.equal(n.sessions, 2)
        assert.ok(Date.now() - Date.parse(n.lastHeartbeat) < 5000)
      }

      const view = await server.tunnels.get({ orgId: server.orgId, name: 'test', sourceAddress: '127.0.0.1' }, tunnel.id)
      assert.equal(view.status, 'CONNECTED')
      assert.equal(view.nodes, 3)
      assert.equal(view.sessions, 6)

      const text = await cli(['key', 'status', '--database', dbUrl])
      assert.equal(text.code, 0, text.stderr)
      assert.match(text.stdout, /NAME\s+CONNECTED TO\s+STATUS\s+ACTIONS/)
      assert.match(text.stdout, /onprem\s+Acme\s+CONNECTED\s+key remove/)
      for (const id of ids) assert.match(text.stdout, new RegExp(`${id}\\s+\\S+\\s+CONNECTED\\s+2/2`))

      const res = await ingressRequest(server.ingressAddress, tunnel.hostHeader, { path: '/hello' })
      assert.equal(res.status, 200)
    })

    test('one tunnel per instance: a second key is refused with a clear error, the same key again changes nothing', async () => {
      const other = await server.createTunnel('another')
      const refused = await cli(['key', 'add', other.key, '--database', dbUrl])
      assert.equal(refused.code, 1)
      assert.match(refused.stderr, new RegExp(`already has the key of tunnel ${tunnel.id} "onprem".*key remove first \\[TUN_ERR_INSTANCE_HAS_KEY\\]`))
      const again = await cli(['key', 'add', tunnel.key, '--database', dbUrl])
      assert.equal(again.code, 0, again.stderr)
      assert.match(again.stdout, /already the instance's key/)
      const malformed = await cli(['key', 'add', 'not-a-key', '--database', dbUrl])
      assert.equal(malformed.code, 1)
      assert.match(malformed.stderr, /TUN_ERR_KEY_MALFORMED/)
      assert.equal((await instanceStatus()).tunnel?.id, tunnel.id)
    })

    test('key add reads the key from standard input or a file, so it stays out of the shell history', async () => {
      const piped = await cli(['key', 'add', '-', '--database', dbUrl], {}, `${tunnel.key}\n`)
      assert.equal(piped.code, 0, piped.stderr)
      assert.match(piped.stdout, /already the instance's key/)
      const file = join(root, 'key.txt')
      await writeFile(file, `${tunnel.key}\n`, { mode: 0o600 })
      const fromFile = await cli(['key', 'add', '--key-file', file, '--database', dbUrl])
      assert.equal(fromFile.code, 0, fromFile.stderr)
      assert.match(fromFile.stdout, /already the instance's key/)
      const empty = await cli(['key', 'add', '-', '--database', dbUrl], {}, '  \n')
      assert.equal(empty.code, 2, 'a usage error')
      assert.match(empty.stderr, /no security key in standard input: it is empty/)
      const both = await cli(['key', 'add', tunnel.key, '--key-file', file, '--database', dbUrl])
      assert.equal(both.code, 2, 'a usage error')
      assert.match(both.stderr, /give the security key once/)
      const none = await cli(['key', 'add', '--database', dbUrl])
      assert.equal(none.code, 2, 'a usage error')
      assert.match(none.stderr, /no security key given/)
      const missing = await cli(['key', 'add', '--key-file', join(root, 'no-such-file'), '--database', dbUrl])
      assert.equal(missing.code, 2, 'a usage error')
      assert.match(missing.stderr, /cannot read --key-file .*ENOENT/)
    })

    test('a stopped node makes the instance LIMITED, naming it; started again it is CONNECTED', async () => {
      const n2 = nodes.get('n2')!.nodeId
      await stopNode('n2')
      const limited = await instanceStatus()
      assert.equal(limited.status, 'LIMITED', 'a graceful stop is recorded at once')
      assert.match(limited.reason, new RegExp(`2 of 3 nodes connected; not connected: ${n2} \\(node stopped at`))
      assert.match(limited.hint, /Cluster nodes page, or in apptunnel key status/)
      assert.equal(limited.nodes.find((n) => n.id === n2)?.online, false)
      const res = await ingressRequest(server.ingressAddress, tunnel.hostHeader, { path: '/hello' })
      assert.equal(res.status, 200, 'the other nodes carry the traffic')

      const again = await startNode('n2')
      assert.equal(again.nodeId, n2, 'the node id is kept in its data directory')
      await eventually(statusIs('CONNECTED'), 'instance CONNECTED again')
    })

    test('key remove disconnects every node; a wrong key then puts every node in ERROR', async () => {
      const removed = await cli(['key', 'remove', '--database', dbUrl])
      assert.equal(removed.code, 0, removed.stderr)
      await eventually(allNodes(null), 'every node back to waiting for a key')
      await eventually(() => server.registry.sessionsOf(tunnel.id).length === 0, 'no session left on the server')
      const none = await cli(['key', 'remove', '--database', dbUrl])
      assert.equal(none.code, 1)
      assert.match(none.stderr, /TUN_ERR_INSTANCE_NO_KEY/)

      const good = decodeSecurityKey(tunnel.key)
      const wrong = encodeSecurityKey({ ...good, secret: Buffer.alloc(good.secret.length, 7) })
      await admin.addKey(wrong, 'test')
      await eventually(allNodes('ERROR'), 'every node ERROR')
      await eventually(statusIs('ERROR'), 'instance ERROR')
      const view = await instanceStatus()
      assert.match(view.reason, /reject/i)
      assert.match(view.hint, new RegExp(`The tunnel server at 127\\.0\\.0\\.1:${server.apiAddress.port} rejected the security key: it is not the current key of its tunnel`))

      await admin.removeKey()
      await admin.addKey(tunnel.key, 'test')
      await eventually(statusIs('CONNECTED'), 'instance CONNECTED with the right key', 10_000)
    })

    test('server down: every node UNAVAILABLE and so the instance; server back: CONNECTED', async () => {
      const { config, dataDir } = server
      const ports = { listen: `127.0.0.1:${server.apiAddress.port}`, ingressListen: `127.0.0.1:${server.ingressAddress.port}` }
      await server.close()
      await eventually(allNodes('UNAVAILABLE'), 'every node UNAVAILABLE')
      await eventually(statusIs('UNAVAILABLE'), 'instance UNAVAILABLE')
      const view = await instanceStatus()
      assert.match(view.reason, /cannot reach|lost/)
      assert.match(view.hint, /outgoing connections/)
      server = await startTestServer({ ...config, ...ports }, dataDir)
      await eventually(statusIs('CONNECTED'), 'instance CONNECTED after the server came back', 10_000)
      const res = await ingressRequest(server.ingressAddress, tunnel.hostHeader, { path: '/hello' })
      assert.equal(res.status, 200)
    })

    test('cluster node remove retires a stopped node; a running or unknown node is refused', async () => {
      const n3 = nodes.get('n3')!.nodeId
      const running = await cli(['cluster', 'node', 'remove', n3, '--database', dbUrl])
      assert.equal(running.code, 1)
      assert.match(running.stderr, /is running .*TUN_ERR_INSTANCE_NODE_ONLINE/)
      await stopNode('n3')
      assert.equal((await instanceStatus()).status, 'LIMITED')
      const listed = await cli(['cluster', 'node', 'list', '--database', dbUrl])
      assert.match(listed.stdout, new RegExp(`${n3}\\s+\\S+\\s+down`))
      const retired = await cli(['cluster', 'node', 'remove', n3, '--database', dbUrl])
      assert.equal(retired.code, 0, retired.stderr)
      const view = await instanceStatus()
      assert.equal(view.status, 'CONNECTED')
      assert.equal(view.nodes.length, 2)
      const unknown = await cli(['cluster', 'node', 'remove', 'no-such-node', '--database', dbUrl])
      assert.equal(unknown.code, 1)
      assert.match(unknown.stderr, /TUN_ERR_INSTANCE_NODE_UNKNOWN/)
    })

    test('the key at rest: encrypted with a key file; a node without that file says so (ERROR), one with it connects', async () => {
      assert.equal((await cli(['key', 'remove', '--database', dbUrl])).code, 0)
      const keyFile = join(root, 'instance.key')
      const made = await cli(['key', 'new-encryption-file', keyFile])
      assert.equal(made.code, 0, made.stderr)
      const added = await cli(['key', 'add', tunnel.key, '--database', dbUrl, '--key-encryption-file', keyFile])
      assert.equal(added.code, 0, added.stderr)
      const stored = await new InstanceKeyRepository(database).get()
      assert.match(stored!.securityKey, /^enc:v1:[0-9a-f]{8}:/)
      assert.ok(!stored!.securityKey.includes(tunnel.key.slice(5, 25)), 'the database does not hold the key')
      assert.equal(stored!.tunnelId, tunnel.id)

      // n1 and n2 run without the file: they cannot open it and say why.
      await eventually(allNodes('ERROR'), 'nodes without the key file are in ERROR')
      assert.match(nodes.get('n1')!.status.reason, /encrypted .* no --key-encryption-file/)
      assert.equal(nodes.get('n1')!.status.code, 'TUN_ERR_KEY_SEALED')
      const again = await cli(['key', 'add', tunnel.key, '--database', dbUrl, '--key-encryption-file', keyFile])
      assert.match(again.stdout, /already the instance's key/, 'with the file, the same key is recognised')

      for (const name of ['n1', 'n2']) await stopNode(name)
      const sealedNode = await startAgent(
        loadAgentConfig({ upstream: upstream.address, database: dbUrl, dataDir: join(root, 'n4'), keyEncryptionFile: keyFile, keyPollMs: 100, nodeHeartbeatMs: 150, logLevel: 'silent' }),
      )
      nodes.set('n4', sealedNode)
      await sealedNode.waitFor((st) => st.status === 'CONNECTED')
      const res = await ingressRequest(server.ingressAddress, tunnel.hostHeader, { path: '/hello' })
      assert.equal(res.status, 200)
    })
  })
}

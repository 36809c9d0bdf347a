import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { callAdminApi, type AdminTarget } from '../src/cli/admin-client.ts'
import { isTunnelError } from '../src/errors/index.ts'
import { decodeSecurityKey } from '../src/protocol/index.ts'
import { agentConnect } from '../src/testing/agent-connect.ts'
import { eventually } from '../src/testing/eventually.ts'
import { checkNoLeakedHandles } from '../src/testing/leak-check.ts'
import { startTestServer, type TestServer } from '../src/testing/tunnel-harness.ts'

checkNoLeakedHandles()

const CLUSTER = { clusterListen: '127.0.0.1:0', clusterHeartbeatMs: 100, clusterKeyPollMs: 300, clusterKeyGraceMs: 600 }

/**
 * Decision 38: each replica caches the tunnel records and token hashes it read. The replicas run on
 * a frozen clock, so nothing cached ever expires here: only the bus events can make a delete or a
 * revocation on one replica take effect on the other.
 */
describe('credential caches of replicas follow deletes and revocations made on another replica', () => {
  let dirA: string
  let dirB: string
  let a: TestServer
  let b: TestServer
  const frozen = Date.now()

  before(async () => {
    dirA = await mkdtemp(join(tmpdir(), 'apptunnel-cache-a-'))
    dirB = await mkdtemp(join(tmpdir(), 'apptunnel-cache-b-'))
    a = await startTestServer({ ...CLUSTER, clusterNodeId: 'replica-a' }, dirA, { now: () => frozen })
    b = await startTestServer({ ...CLUSTER, clusterNodeId: 'replica-b', database: join(dirA, 'apptunnel.db') }, dirB, { now: () => frozen })
    await eventually(() => a.cluster!.status().links.length === 1 && b.cluster!.status().links.length === 1, 'replicas linked')
  })
  after(async () => {
    await b?.dispose()
    await a?.dispose()
    await rm(dirB, { recursive: true, force: true })
  })

  test('a tunnel deleted on A: B, with its record cached, refuses the key within moments', async () => {
    const tunnel = await a.createTunnel('cached on b')
    const { secret } = decodeSecurityKey(tunnel.key)
    assert.equal((await agentConnect(b, tunnel.id, secret)).status, 101)
    assert.equal((await agentConnect(b, tunnel.id, secret)).status, 101, 'B verifies from its cache')
    await a.tunnels.delete({ orgId: a.orgId, name: 'test', sourceAddress: '127.0.0.1' }, tunnel.id)
    await eventually(async () => (await agentConnect(b, tunnel.id, secret)).code === 'TUN_ERR_TUNNEL_NOT_FOUND', 'B refuses the deleted tunnel')
  })

  test('a token revoked on A: B, with its identity cached, refuses it within moments', async () => {
    const bootstrap = (await readFile(join(dirA, 'admin-token'), 'utf8')).trim()
    const onA: AdminTarget = { url: `https://127.0.0.1:${a.apiAddress.port}`, token: bootstrap, ca: a.certificatePem }
    const created = (await callAdminApi(onA, 'POST', '/api/v1/tokens', { name: 'used on b' })).json as { id: string; token: string }
    const onB: AdminTarget = { url: `https://127.0.0.1:${b.apiAddress.port}`, token: created.token, ca: b.certificatePem }
    assert.equal((await callAdminApi(onB, 'GET', '/api/v1/tunnels')).status, 200)
    assert.equal((await callAdminApi(onB, 'GET', '/api/v1/tunnels')).status, 200, 'B verifies from its cache')
    await callAdminApi(onA, 'DELETE', `/api/v1/tokens/${created.id}`)
    await eventually(async () => {
      try {
        await callAdminApi(onB, 'GET', '/api/v1/tunnels')
        return false
      } catch (err) {
        if (isTunnelError(err) && err.code === 'TUN_ERR_AUTH_TOKEN_INVALID') return true
        throw err
      }
    }, 'B refuses the revoked token')
  })
})

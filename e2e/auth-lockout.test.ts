import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { callAdminApi, type AdminTarget } from '../src/cli/admin-client.ts'
import { isTunnelError } from '../src/errors/index.ts'
import { decodeSecurityKey } from '../src/protocol/index.ts'
import { agentConnect } from '../src/testing/agent-connect.ts'
import { newTunnelId } from '../src/server/tunnels/tunnel-service.ts'
import { checkNoLeakedHandles } from '../src/testing/leak-check.ts'
import { startTestUpstream } from '../src/testing/test-upstream.ts'
import { startTestAgent, startTestServer, type TestServer } from '../src/testing/tunnel-harness.ts'

checkNoLeakedHandles()

/**
 * 100 bad connects from 127.0.0.1: random tunnel ids first (so the address is limited before the
 * real id is ever tried), then wrong secrets for the real id. The codes answered, in order.
 */
async function badConnects(server: TestServer, realId: string): Promise<string[]> {
  const codes: string[] = []
  for (let i = 0; i < 50; i++) codes.push((await agentConnect(server, newTunnelId(), Buffer.alloc(32, 7))).code ?? '?')
  for (let i = 0; i < 50; i++) codes.push((await agentConnect(server, realId, Buffer.alloc(32, 9))).code ?? '?')
  return codes
}

describe('failed logins from one address do not lock out the real credential (decision 38)', () => {
  test('after 100 bad agent connects from its address the real agent connects at once, also as the first attempts after a restart', async (t) => {
    const upstream = await startTestUpstream()
    let server = await startTestServer()
    try {
      const tunnel = await server.createTunnel('lockout')
      const { secret } = decodeSecurityKey(tunnel.key)
      for (const round of ['fresh server', 'after a restart']) {
        const codes = await badConnects(server, tunnel.id)
        assert.deepEqual(codes.slice(0, 20), Array(20).fill('TUN_ERR_TUNNEL_NOT_FOUND'), round)
        // The bad ones stay refused as limited, random ids and wrong secrets alike.
        assert.deepEqual(codes.slice(20), Array(80).fill('TUN_ERR_HANDSHAKE_RATE_LIMITED'), round)

        const real = await agentConnect(server, tunnel.id, secret)
        assert.equal(real.status, 101, `${round}: the real key connects from the limited address (got ${real.code})`)

        const startedAt = performance.now()
        const agent = await startTestAgent(tunnel.key, upstream.address, { nodeId: 'real-agent' })
        try {
          await agent.waitFor((s) => s.status === 'CONNECTED')
          t.diagnostic(`${round}: the real agent was CONNECTED ${(performance.now() - startedAt).toFixed(0)} ms after it started, after 100 bad connects from its address`)
        } finally {
          await agent.close()
        }
        // Still limited: the next bad one is refused again.
        assert.equal((await agentConnect(server, tunnel.id, Buffer.alloc(32, 9))).code, 'TUN_ERR_HANDSHAKE_RATE_LIMITED')
        if (round === 'fresh server') server = await server.restart()
      }
    } finally {
      await server.dispose()
      await upstream.close()
    }
  })

  test('a tunnel deleted with its record cached is refused on the next connect', async () => {
    // A frozen clock: the cached record never expires, so only the delete can drop it.
    const frozen = Date.now()
    const server = await startTestServer({}, undefined, { now: () => frozen })
    try {
      const tunnel = await server.createTunnel('cached')
      const { secret } = decodeSecurityKey(tunnel.key)
      assert.equal((await agentConnect(server, tunnel.id, secret)).status, 101, 'the record is now cached')
      assert.equal((await agentConnect(server, tunnel.id, secret)).status, 101)
      await server.tunnels.delete({ orgId: server.orgId, name: 'test', sourceAddress: '127.0.0.1' }, tunnel.id)
      assert.deepEqual(await agentConnect(server, tunnel.id, secret), { status: 404, code: 'TUN_ERR_TUNNEL_NOT_FOUND' })
    } finally {
      await server.dispose()
    }
  })

  test('after 20+ bad admin tokens from an address the valid token gets 200, the bad ones 429, also after a restart; revocation stays immediate', async () => {
    let server = await startTestServer()
    try {
      const token = (await readFile(join(server.dataDir, 'admin-token'), 'utf8')).trim()
      const target = (): AdminTarget => ({ url: `https://127.0.0.1:${server.apiAddress.port}`, token, ca: server.certificatePem })
      const codeOf = async (t: AdminTarget): Promise<string> => {
        try {
          await callAdminApi(t, 'GET', '/api/v1/tunnels')
          return 'ok'
        } catch (err) {
          if (isTunnelError(err)) return err.code
          throw err
        }
      }
      for (const round of ['fresh server', 'after a restart']) {
        const codes: string[] = []
        // Distinct random tokens, so no answer comes from a cached miss.
        for (let i = 0; i < 30; i++) codes.push(await codeOf({ ...target(), token: 'atadm_' + String(i).padStart(43, 'x') }))
        assert.deepEqual(codes.slice(0, 20), Array(20).fill('TUN_ERR_AUTH_TOKEN_INVALID'), round)
        assert.deepEqual(codes.slice(20), Array(10).fill('TUN_ERR_AUTH_RATE_LIMITED'), round)
        const { status } = await callAdminApi(target(), 'GET', '/api/v1/tunnels')
        assert.equal(status, 200, `${round}: the valid token passes from the limited address`)
        assert.equal(await codeOf({ ...target(), token: 'atadm_' + 'y'.repeat(43) }), 'TUN_ERR_AUTH_RATE_LIMITED', `${round}: a bad one is still refused`)
        if (round === 'fresh server') server = await server.restart()
      }

      // A second token, used (so cached) from the limited address, then revoked: refused at once.
      const created = await callAdminApi(target(), 'POST', '/api/v1/tokens', { name: 'second' })
      const second = (created.json as { token: string; id: string })
      const secondTarget: AdminTarget = { ...target(), token: second.token }
      assert.equal(await codeOf(secondTarget), 'ok')
      assert.equal(await codeOf(secondTarget), 'ok')
      await callAdminApi(target(), 'DELETE', `/api/v1/tokens/${second.id}`)
      // The address is limited, and the revoked token's hash is no longer one worth a lookup.
      assert.equal(await codeOf(secondTarget), 'TUN_ERR_AUTH_RATE_LIMITED')
    } finally {
      await server.dispose()
    }
  })
})

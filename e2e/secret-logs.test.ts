import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { test } from 'node:test'
import { startAgent } from '../src/agent/start-agent.ts'
import { InstanceAdmin } from '../src/agent/instance/instance-admin.ts'
import { callAdminApi, resolveAdminTarget } from '../src/cli/admin-client.ts'
import { loadAgentConfig } from '../src/config/agent-config.ts'
import { loadServerConfig } from '../src/config/server-config.ts'
import { createLogger } from '../src/observability/index.ts'
import { decodeSecurityKey, encodeSecurityKey, hashSecret } from '../src/protocol/index.ts'
import { startServer } from '../src/server/start-server.ts'
import { openDatabase } from '../src/store/index.ts'
import { checkNoLeakedHandles } from '../src/testing/leak-check.ts'
import { startTestUpstream } from '../src/testing/test-upstream.ts'
import { ingressRequest } from '../src/testing/tunnel-harness.ts'

checkNoLeakedHandles()

/** Every log line a process part writes, at trace level, kept for the scan. */
function captureLogs(): { lines: string[]; log: ReturnType<typeof createLogger> } {
  const lines: string[] = []
  let partial = ''
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      const text = partial + chunk.toString('utf8')
      const parts = text.split('\n')
      partial = parts.pop() ?? ''
      lines.push(...parts.filter((l) => l.length > 0))
      done()
    },
  })
  return { lines, log: createLogger({ level: 'trace', name: 'scan', destination: sink }) }
}

test('no secret appears in any log line, at trace level, through a whole life of a tunnel', async () => {
  const { lines, log } = captureLogs()
  const dir = await mkdtemp(join(tmpdir(), 'apptunnel-logscan-'))
  const upstream = await startTestUpstream()
  const server = await startServer(
    loadServerConfig({ dataDir: join(dir, 'server'), listen: '127.0.0.1:0', ingressListen: '127.0.0.1:0', pingIntervalMs: 300, pingTimeoutMs: 1000, logLevel: 'trace' }),
    { log },
  )
  const agents: Array<{ close(): Promise<void> }> = []
  /** what must never be logged, in every encoding it exists in */
  const secrets: string[] = []
  try {
    const adminToken = (await readFile(join(dir, 'server', 'admin-token'), 'utf8')).trim()
    const target = await resolveAdminTarget({ dataDir: join(dir, 'server') })
    const created = (await callAdminApi(target, 'POST', '/api/v1/tunnels', { name: 'scan' })).json as { id: string; key: string; applicationLinkUrl: string }
    const key = decodeSecurityKey(created.key)
    secrets.push(adminToken, created.key, key.secret.toString('base64url'), key.secret.toString('hex'), hashSecret(key.secret))
    const host = new URL(created.applicationLinkUrl).host
    // A failed admin call with a made-up token, and a failed agent with a wrong secret.
    const bogusToken = 'bogus-token-' + 'z'.repeat(30)
    await callAdminApi({ ...target, token: bogusToken }, 'GET', '/api/v1/tunnels').catch(() => undefined)
    const wrongKey = encodeSecurityKey({ ...key, secret: Buffer.alloc(32, 5) })
    secrets.push(bogusToken, wrongKey, Buffer.alloc(32, 5).toString('base64url'))
    const wrong = await startAgent(loadAgentConfig({ key: wrongKey, upstream: upstream.address, nodeId: 'wrong', logLevel: 'trace', sessions: 1 }), { log })
    agents.push(wrong)
    await wrong.waitFor((s) => s.status === 'ERROR')

    // The instance path: the key goes through the database and a node picks it up.
    const instanceDb = join(dir, 'instance.db')
    const database = await openDatabase(instanceDb)
    await new InstanceAdmin(database).addKey(created.key, 'scan')
    await database.close()
    const node = await startAgent(loadAgentConfig({ database: instanceDb, dataDir: join(dir, 'node'), upstream: upstream.address, keyPollMs: 100, logLevel: 'trace' }), { log })
    agents.push(node)
    await node.waitFor((s) => s.status === 'CONNECTED')

    const product = (await callAdminApi(target, 'POST', `/api/v1/tunnels/${created.id}/products`, { name: 'scan product' })).json as { credentialValue: string }
    // atp1_<id>_<secret>: the secret is base64url and may hold '_' itself (or start with one).
    secrets.push(product.credentialValue, product.credentialValue.split('_').slice(2).join('_'), 'app-token-for-the-upstream')
    assert.equal((await ingressRequest(server.ingressAddress, host, { headers: { 'x-apptunnel-credential': product.credentialValue, authorization: 'Bearer app-token-for-the-upstream' } })).status, 200)
    assert.equal((await ingressRequest(server.ingressAddress, host, { headers: { 'x-apptunnel-credential': product.credentialValue + 'x' } })).status, 403)
    await callAdminApi(target, 'DELETE', `/api/v1/tunnels/${created.id}`)
    await node.waitFor((s) => s.status === 'ERROR')
  } finally {
    for (const a of agents) await a.close()
    await server.close()
    await upstream.close()
    await rm(dir, { recursive: true, force: true })
  }

  assert.ok(lines.length > 10, `the scan saw the logs (${lines.length} lines)`)
  assert.ok(lines.some((l) => l.includes('"agent status"')) && lines.some((l) => l.includes('security key picked up')), 'agent and instance logs were captured')
  assert.equal(secrets.length, 11)
  for (const secret of secrets) {
    assert.ok(secret.length >= 16, `a secret to look for is at least 16 characters (${secret.length})`)
    const leak = lines.find((l) => l.includes(secret))
    assert.equal(leak, undefined, `a secret (${secret.slice(0, 6)}…) was logged: ${leak?.slice(0, 300)}`)
  }
  // Whatever shape a key or credential takes, its prefix alone gives it away.
  assert.equal(lines.find((l) => /atk1_|atp1_[a-z0-9]{12}_/.test(l)), undefined)
})

import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { callAdminApi, type AdminTarget } from '../src/cli/admin-client.ts'
import { isTunnelError, type TunnelError } from '../src/errors/index.ts'
import type { AuditJson, TokenJson } from '../src/cli/token-commands.ts'
import { cli } from '../src/testing/cli-runner.ts'
import { checkNoLeakedHandles } from '../src/testing/leak-check.ts'
import { startTestServer, type TestServer } from '../src/testing/tunnel-harness.ts'

checkNoLeakedHandles()

async function refused(p: Promise<unknown>): Promise<TunnelError> {
  try {
    await p
  } catch (err) {
    if (isTunnelError(err)) return err
    throw err
  }
  assert.fail('the call succeeded')
}

async function targetOf(server: TestServer): Promise<AdminTarget> {
  const token = (await readFile(join(server.dataDir, 'admin-token'), 'utf8')).trim()
  return { url: `https://127.0.0.1:${server.apiAddress.port}`, token, ca: server.certificatePem }
}

describe('admin API tokens and audit log', () => {
  let server: TestServer
  let admin: AdminTarget

  before(async () => {
    server = await startTestServer()
    admin = await targetOf(server)
  })
  after(() => server.dispose())

  test('create → the new token works and is listed without its value; revoke → refused at once', async () => {
    const { status, json } = await callAdminApi(admin, 'POST', '/api/v1/tokens', { name: 'ci' })
    assert.equal(status, 201)
    const created = json as TokenJson
    assert.match(created.token ?? '', /^atadm_[A-Za-z0-9_-]{43}$/)
    const ci: AdminTarget = { ...admin, token: created.token! }
    assert.equal((await callAdminApi(ci, 'GET', '/api/v1/tunnels')).status, 200)

    const list = (await callAdminApi(admin, 'GET', '/api/v1/tokens')).json as { tokens: TokenJson[] }
    assert.deepEqual(list.tokens.map((t) => t.name).sort(), ['bootstrap-admin', 'ci'])
    assert.ok(list.tokens.every((t) => !('token' in t) && !('tokenHash' in t)), 'values and hashes never leave the server')
    assert.notEqual(list.tokens.find((t) => t.id === created.id)?.lastUsedAt, null, 'the use was recorded')

    assert.equal((await callAdminApi(admin, 'DELETE', `/api/v1/tokens/${created.id}`)).status, 204)
    const err = await refused(callAdminApi(ci, 'GET', '/api/v1/tunnels'))
    assert.equal(err.code, 'TUN_ERR_AUTH_TOKEN_INVALID')
  })

  test('bad token requests get clear errors: duplicate or empty name, unknown id, the last token', async () => {
    await callAdminApi(admin, 'POST', '/api/v1/tokens', { name: 'dup' })
    assert.equal((await refused(callAdminApi(admin, 'POST', '/api/v1/tokens', { name: 'dup' }))).code, 'TUN_ERR_TOKEN_NAME_INVALID')
    assert.equal((await refused(callAdminApi(admin, 'POST', '/api/v1/tokens', { name: '  ' }))).code, 'TUN_ERR_TOKEN_NAME_INVALID')
    assert.equal((await refused(callAdminApi(admin, 'POST', '/api/v1/tokens', {}))).code, 'TUN_ERR_TOKEN_NAME_INVALID')
    assert.equal((await refused(callAdminApi(admin, 'DELETE', '/api/v1/tokens/no-such-token'))).code, 'TUN_ERR_TOKEN_NOT_FOUND')

    // Revoke every other token, then the last one is kept with a reason.
    const { tokens } = (await callAdminApi(admin, 'GET', '/api/v1/tokens')).json as { tokens: TokenJson[] }
    const bootstrap = tokens.find((t) => t.name === 'bootstrap-admin')!
    for (const t of tokens) if (t.id !== bootstrap.id) await callAdminApi(admin, 'DELETE', `/api/v1/tokens/${t.id}`)
    const last = await refused(callAdminApi(admin, 'DELETE', `/api/v1/tokens/${bootstrap.id}`))
    assert.equal(last.code, 'TUN_ERR_TOKEN_LAST')
    assert.match(last.message, /last API token/)
    assert.equal((await callAdminApi(admin, 'GET', '/api/v1/tunnels')).status, 200, 'the last token still works')
  })

  test('the audit log names who viewed, created and deleted what, from where', async () => {
    const t = await server.createTunnel('audited')
    await callAdminApi(admin, 'GET', `/api/v1/tunnels/${t.id}`)
    await callAdminApi(admin, 'GET', `/api/v1/tunnels/${t.id}/products`)
    await callAdminApi(admin, 'DELETE', `/api/v1/tunnels/${t.id}`)
    const { events } = (await callAdminApi(admin, 'GET', '/api/v1/audit?limit=20')).json as { events: AuditJson[] }
    const about = events.filter((e) => e.target === t.id).map((e) => `${e.action} ${e.actor} ${e.sourceAddress}`)
    assert.deepEqual(about, [
      'tunnel.delete token:bootstrap-admin 127.0.0.1',
      'product.list token:bootstrap-admin 127.0.0.1',
      'tunnel.view token:bootstrap-admin 127.0.0.1',
      // the test harness creates tunnels in-process, as an actor named after the tunnel
      'tunnel.create audited 127.0.0.1',
    ])
    assert.ok(events.some((e) => e.action === 'token.create' && e.details?.['name'] === 'ci'))
    assert.ok(events.some((e) => e.action === 'token.revoke'))
    assert.equal((await refused(callAdminApi(admin, 'GET', '/api/v1/audit?limit=0'))).code, 'TUN_ERR_API_BAD_REQUEST')
    assert.equal((await refused(callAdminApi(admin, 'GET', '/api/v1/audit?limit=abc'))).code, 'TUN_ERR_API_BAD_REQUEST')
  })

  test('CLI: token create, token list, audit', async () => {
    const created = await cli(['token', 'create', '--name', 'from-cli', '--json', '--data-dir', server.dataDir])
    assert.equal(created.code, 0, created.stderr)
    const t = JSON.parse(created.stdout) as TokenJson
    assert.match(t.token ?? '', /^atadm_/)
    const listed = await cli(['token', 'list', '--data-dir', server.dataDir])
    assert.equal(listed.code, 0, listed.stderr)
    assert.match(listed.stdout, /from-cli/)
    assert.doesNotMatch(listed.stdout, new RegExp(t.token!))
    const revoked = await cli(['token', 'revoke', t.id, '--data-dir', server.dataDir])
    assert.equal(revoked.code, 0, revoked.stderr)
    const audit = await cli(['audit', '--limit', '5', '--data-dir', server.dataDir])
    assert.equal(audit.code, 0, audit.stderr)
    assert.match(audit.stdout, /token\.revoke/)
    const bad = await cli(['audit', '--limit', '5000', '--data-dir', server.dataDir])
    assert.notEqual(bad.code, 0)
    assert.match(bad.stderr, /limit must be .*TUN_ERR_API_BAD_REQUEST/)
  })
})

test('failed admin API authentications from one address are cut off with 429, audited once per window', async () => {
  const server = await startTestServer()
  try {
    const admin = await targetOf(server)
    const wrong: AdminTarget = { ...admin, token: 'atadm_' + 'x'.repeat(43) }
    for (let i = 0; i < 20; i++) {
      assert.equal((await refused(callAdminApi(wrong, 'GET', '/api/v1/tunnels'))).code, 'TUN_ERR_AUTH_TOKEN_INVALID')
    }
    for (let i = 0; i < 3; i++) {
      const limited = await refused(callAdminApi(wrong, 'GET', '/api/v1/tunnels'))
      assert.equal(limited.code, 'TUN_ERR_AUTH_RATE_LIMITED')
      assert.match(limited.message, /127\.0\.0\.1/)
    }
    // The address's failures are limited, not a valid token from there (decision 38).
    assert.equal((await callAdminApi(admin, 'GET', '/api/v1/tunnels')).status, 200)
    assert.equal((await refused(callAdminApi(wrong, 'GET', '/api/v1/tunnels'))).code, 'TUN_ERR_AUTH_RATE_LIMITED')
    const { AuditRepository, openDatabase } = await import('../src/store/index.ts')
    const db = await openDatabase(join(server.dataDir, 'apptunnel.db'))
    try {
      const events = await new AuditRepository(db).list(server.orgId, { limit: 100 })
      assert.equal(events.filter((e) => e.action === 'auth.failed').length, 20)
      assert.ok(events.filter((e) => e.action === 'auth.failed').every((e) => e.sourceAddress === '127.0.0.1' && e.actor === 'anonymous'))
      assert.equal(events.filter((e) => e.action === 'auth.rate_limited').length, 1)
    } finally {
      await db.close()
    }
  } finally {
    await server.dispose()
  }
})

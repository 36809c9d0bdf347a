import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { request } from 'node:https'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { callAdminApi, type AdminTarget } from '../src/cli/admin-client.ts'
import { cli } from '../src/testing/cli-runner.ts'
import { checkNoLeakedHandles } from '../src/testing/leak-check.ts'
import { startTestServer, type TestServer } from '../src/testing/tunnel-harness.ts'

checkNoLeakedHandles()

/** One admin API call over HTTPS, answering the raw status and JSON body (the error's details too). */
function post(admin: AdminTarget, path: string, body: unknown): Promise<{ status: number; json: { error?: { code: string; message: string; character?: string; position?: number } } }> {
  return new Promise((resolve, reject) => {
    const req = request(`${admin.url}${path}`, { method: 'POST', ca: admin.ca, headers: { authorization: `Bearer ${admin.token}`, 'content-type': 'application/json' } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) as never }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(JSON.stringify(body))
  })
}

describe('names shown to other people refuse control, invisible format and bidirectional characters', () => {
  let server: TestServer
  let admin: AdminTarget

  before(async () => {
    server = await startTestServer()
    const token = (await readFile(join(server.dataDir, 'admin-token'), 'utf8')).trim()
    admin = { url: `https://127.0.0.1:${server.apiAddress.port}`, token, ca: server.certificatePem }
  })
  after(() => server.dispose())

  test('admin API: tunnel, linked product and token names say which character at which position; nothing is stored', async () => {
    const cases: Array<[string, string, number, RegExp]> = [
      ['\u202e\u200bevil', 'U+202E', 1, /\(a bidirectional control character\) at position 1/],
      ['ab\u200bcd', 'U+200B', 3, /\(an invisible format character\) at position 3/],
      ['x\u2067y', 'U+2067', 2, /bidirectional/],
      ['\ufeffBOM', 'U+FEFF', 1, /invisible format/],
      ['a\u2028b', 'U+2028', 2, /line or paragraph separator/],
      ['bell\u0007', 'U+0007', 5, /a control character/],
      ['\u{1F600}\u200dx', 'U+200D', 2, /position 2/],
    ]
    for (const [name, character, position, message] of cases) {
      const tunnel = await post(admin, '/api/v1/tunnels', { name })
      assert.equal(tunnel.status, 400, JSON.stringify(name))
      assert.equal(tunnel.json.error?.code, 'TUN_ERR_TUNNEL_NAME_INVALID')
      assert.equal(tunnel.json.error?.character, character)
      assert.equal(tunnel.json.error?.position, position)
      assert.match(tunnel.json.error?.message ?? '', new RegExp(`^tunnel name contains ${character.replace("+", "\\+")} `))
      assert.match(tunnel.json.error?.message ?? '', message)

      const token = await post(admin, '/api/v1/tokens', { name })
      assert.equal(token.status, 400)
      assert.equal(token.json.error?.code, 'TUN_ERR_TOKEN_NAME_INVALID')
      assert.match(token.json.error?.message ?? '', new RegExp(`^token name contains ${character.replace("+", "\\+")} .* at position ${position}:`))
    }
    const t = await server.createTunnel('products')
    const product = await post(admin, `/api/v1/tunnels/${t.id}/products`, { name: 'Jira\u202eduolC' })
    assert.equal(product.status, 400)
    assert.equal(product.json.error?.code, 'TUN_ERR_PRODUCT_INVALID')
    assert.equal(product.json.error?.character, 'U+202E')
    assert.equal(product.json.error?.position, 5)

    const { tunnels } = (await callAdminApi(admin, 'GET', '/api/v1/tunnels')).json as { tunnels: Array<{ name: string }> }
    assert.deepEqual(tunnels.map((x) => x.name), ['products'])
    const { products } = (await callAdminApi(admin, 'GET', `/api/v1/tunnels/${t.id}/products`)).json as { products: unknown[] }
    assert.deepEqual(products, [])
  })

  test('admin API: letters of any script, right-to-left ones included, and emoji are names like any other', async () => {
    for (const name of ['Jira Café', 'מערכת CRM', 'نظام', '日本のウィキ', 'deploy 🚀']) {
      const r = await post(admin, '/api/v1/tunnels', { name })
      assert.equal(r.status, 201, `${name}: ${JSON.stringify(r.json)}`)
    }
    const t = await server.createTunnel('rtl products')
    assert.equal((await post(admin, `/api/v1/tunnels/${t.id}/products`, { name: 'מערכת' })).status, 201)
    assert.equal((await post(admin, '/api/v1/tokens', { name: 'ci café' })).status, 201)
  })

  test('CLI: tunnel create, tunnel product add and token create refuse such a name with the character and its position (exit non-zero)', async () => {
    const tunnel = await cli(['tunnel', 'create', '--name', '\u202e\u200bevil', '--data-dir', server.dataDir])
    assert.notEqual(tunnel.code, 0)
    assert.match(tunnel.stderr, /tunnel name contains U\+202E \(a bidirectional control character\) at position 1: .* \[TUN_ERR_TUNNEL_NAME_INVALID\]/)
    const token = await cli(['token', 'create', '--name', 'ci\u200b', '--data-dir', server.dataDir])
    assert.notEqual(token.code, 0)
    assert.match(token.stderr, /token name contains U\+200B \(an invisible format character\) at position 3: .*\[TUN_ERR_TOKEN_NAME_INVALID\]/)
    const t = await server.createTunnel('cli products')
    const product = await cli(['tunnel', 'product', 'add', t.id, '--name', 'Jira\u2066Cloud', '--data-dir', server.dataDir])
    assert.notEqual(product.code, 0)
    assert.match(product.stderr, /the product name contains U\+2066 \(a bidirectional control character\) at position 5: .*\[TUN_ERR_PRODUCT_INVALID\]/)
  })
})

import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { TunnelAgent } from '../src/agent/start-agent.ts'
import { join } from 'node:path'
import { isTunnelError } from '../src/errors/index.ts'
import { AuditRepository, openDatabase } from '../src/store/index.ts'
import { cli } from '../src/testing/cli-runner.ts'
import { checkNoLeakedHandles } from '../src/testing/leak-check.ts'
import { errorCodeOf, ingressRequest, startConnectedTunnel, startTestAgent, type ConnectedTunnel } from '../src/testing/tunnel-harness.ts'

checkNoLeakedHandles()

const CREDENTIAL = 'x-apptunnel-credential'

describe('ingress access: linked products with credentials and allowed source blocks', () => {
  let fixture: ConnectedTunnel
  let other: Awaited<ReturnType<ConnectedTunnel['server']['createTunnel']>>
  let otherAgent: TunnelAgent
  const actor = () => ({ orgId: fixture.server.orgId, name: 'test', sourceAddress: '127.0.0.1' })

  before(async () => {
    fixture = await startConnectedTunnel()
    other = await fixture.server.createTunnel('other')
    otherAgent = await startTestAgent(other.key, fixture.upstream.address, { nodeId: 'other-node' })
    await otherAgent.waitFor((s) => s.status === 'CONNECTED')
  })
  after(async () => {
    await otherAgent?.close()
    await fixture?.close()
  })

  const call = (host: string, headers: Record<string, string> = {}) => ingressRequest(fixture.server.ingressAddress, host, { path: '/hello', headers })
  const seenLast = () => fixture.upstream.seen[fixture.upstream.seen.length - 1]!

  test('a tunnel without linked products is open to whoever reaches the ingress; the credential field never reaches the app', async () => {
    const res = await call(fixture.tunnel.hostHeader, { [CREDENTIAL]: 'atp1_whatever' })
    assert.equal(res.status, 200)
    assert.equal(seenLast().headers[CREDENTIAL], undefined)
  })

  test('with a credential product: no credential, a wrong one, or another tunnel\'s is 403 with a code; the right one passes, unseen by the app', async () => {
    const p = await fixture.server.products.add(actor(), fixture.tunnel.id, { name: 'Jira Cloud' })
    assert.match(p.credentialValue!, /^atp1_[a-z0-9]{12}_[A-Za-z0-9_-]{43}$/)
    const otherProduct = await fixture.server.products.add(actor(), other.id, { name: 'Confluence Cloud' })

    const none = await call(fixture.tunnel.hostHeader)
    assert.equal(none.status, 403)
    assert.equal(errorCodeOf(none), 'TUN_ERR_INGRESS_FORBIDDEN')
    assert.match(none.body.toString(), /X-Apptunnel-Credential/)

    const tampered = p.credentialValue!.slice(0, -2) + (p.credentialValue!.endsWith('AA') ? 'BB' : 'AA')
    for (const wrong of [tampered, otherProduct.credentialValue!, 'Bearer nonsense']) {
      const res = await call(fixture.tunnel.hostHeader, { [CREDENTIAL]: wrong })
      assert.equal(res.status, 403, `refused: ${wrong.slice(0, 20)}…`)
      assert.equal(errorCodeOf(res), 'TUN_ERR_INGRESS_FORBIDDEN')
    }
    // Isolation: the other tunnel takes its own product's credential and not this one's.
    assert.equal((await call(other.hostHeader, { [CREDENTIAL]: otherProduct.credentialValue! })).status, 200)
    assert.equal((await call(other.hostHeader, { [CREDENTIAL]: p.credentialValue! })).status, 403)

    const seenBefore = fixture.upstream.seen.length
    const ok = await call(fixture.tunnel.hostHeader, { [CREDENTIAL]: p.credentialValue! })
    assert.equal(ok.status, 200)
    assert.equal(fixture.upstream.seen.length, seenBefore + 1)
    assert.equal(seenLast().headers[CREDENTIAL], undefined, 'the credential is for the ingress only')

    await fixture.server.products.remove(actor(), fixture.tunnel.id, p.id)
    await fixture.server.products.remove(actor(), other.id, otherProduct.id)
    assert.equal((await call(fixture.tunnel.hostHeader)).status, 200, 'no products left: open again')
  })

  test('source blocks: a product known by its address alone, and a credential that only counts from its blocks', async () => {
    const elsewhere = await fixture.server.products.add(actor(), fixture.tunnel.id, { name: 'partner', credential: false, cidrs: ['10.0.0.0/8', '2001:db8::/32'] })
    assert.deepEqual(elsewhere.cidrs, ['10.0.0.0/8', '2001:db8::/32'])
    assert.equal(elsewhere.credentialValue, undefined)
    const refused = await call(fixture.tunnel.hostHeader)
    assert.equal(refused.status, 403)
    assert.match(refused.body.toString(), /127\.0\.0\.1/)

    const pinned = await fixture.server.products.add(actor(), fixture.tunnel.id, { name: 'pinned', cidrs: ['192.0.2.0/24'] })
    assert.equal((await call(fixture.tunnel.hostHeader, { [CREDENTIAL]: pinned.credentialValue! })).status, 403, 'right credential, wrong source')

    const local = await fixture.server.products.add(actor(), fixture.tunnel.id, { name: 'loopback', credential: false, cidrs: ['127.0.0.0/8'] })
    assert.equal((await call(fixture.tunnel.hostHeader)).status, 200, 'the source alone identifies it')

    for (const p of [elsewhere, pinned, local]) await fixture.server.products.remove(actor(), fixture.tunnel.id, p.id)
  })

  test('bad products are refused with an error that names the problem', async () => {
    const refusal = async (input: { name: unknown; credential?: unknown; cidrs?: unknown }, message: RegExp): Promise<void> => {
      await assert.rejects(fixture.server.products.add(actor(), fixture.tunnel.id, input), (err) => {
        assert.ok(isTunnelError(err))
        assert.equal(err.code, 'TUN_ERR_PRODUCT_INVALID')
        assert.match(err.message, message)
        return true
      })
    }
    await refusal({ name: '' }, /needs a name/)
    await refusal({ name: 'x', cidrs: ['10.0.0.0/33'] }, /"10\.0\.0\.0\/33": the prefix length must be 0-32/)
    await refusal({ name: 'x', cidrs: ['intranet'] }, /"intranet" is not an IPv4 or IPv6 address/)
    await refusal({ name: 'x', credential: false }, /without a credential needs at least one allowed CIDR block/)
    await refusal({ name: 'x', credential: 'yes' }, /credential must be true or false/)
    await assert.rejects(fixture.server.products.remove(actor(), fixture.tunnel.id, 'aaaaaaaaaaaa'), { code: 'TUN_ERR_PRODUCT_NOT_FOUND' })
    await assert.rejects(fixture.server.products.list(actor(), 'nosuchtunnel'), { code: 'TUN_ERR_TUNNEL_NOT_FOUND' })
  })

  test('CLI: tunnel product add prints the credential once; list shows the product; remove opens the tunnel again; both are audited', async () => {
    const dir = ['--data-dir', fixture.server.dataDir]
    const added = await cli(['tunnel', 'product', 'add', fixture.tunnel.id, '--name', 'Jira Cloud', '--cidr', '127.0.0.1', ...dir, '--json'])
    assert.equal(added.code, 0, added.stderr)
    const p = JSON.parse(added.stdout) as { id: string; credentialValue: string; cidrs: string[] }
    assert.deepEqual(p.cidrs, ['127.0.0.1/32'])
    assert.equal((await call(fixture.tunnel.hostHeader)).status, 403)
    assert.equal((await call(fixture.tunnel.hostHeader, { [CREDENTIAL]: p.credentialValue })).status, 200)

    const listed = await cli(['tunnel', 'product', 'list', fixture.tunnel.id, ...dir])
    assert.equal(listed.code, 0, listed.stderr)
    assert.match(listed.stdout, new RegExp(`${p.id}\\s+Jira Cloud\\s+yes\\s+127\\.0\\.0\\.1/32`))
    assert.doesNotMatch(listed.stdout, /atp1_/, 'the credential is shown only when created')

    const bad = await cli(['tunnel', 'product', 'add', fixture.tunnel.id, '--name', 'x', '--no-credential', ...dir])
    assert.equal(bad.code, 1)
    assert.match(bad.stderr, /TUN_ERR_PRODUCT_INVALID/)

    const removed = await cli(['tunnel', 'product', 'remove', fixture.tunnel.id, p.id, ...dir])
    assert.equal(removed.code, 0, removed.stderr)
    assert.equal((await call(fixture.tunnel.hostHeader)).status, 200)

    const database = await openDatabase(join(fixture.server.dataDir, 'apptunnel.db'))
    try {
      const events = await new AuditRepository(database).list(fixture.server.orgId, { limit: 50 })
      const mine = events.filter((e) => e.target === fixture.tunnel.id && (e.details as { productId?: string } | null)?.productId === p.id)
      assert.deepEqual(mine.map((e) => e.action).sort(), ['product.create', 'product.delete'])
      assert.ok(mine.every((e) => e.actor.startsWith('token:') && e.sourceAddress === '127.0.0.1'))
      assert.ok(!JSON.stringify(events).includes(p.credentialValue.split('_').slice(2).join('_')), 'no secret in the audit log')
    } finally {
      await database.close()
    }
  })
})

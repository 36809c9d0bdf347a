import assert from 'node:assert/strict'
import { test } from 'node:test'
import { TunnelError } from '../../errors/index.ts'
import { eventually } from '../../testing/eventually.ts'
import { checkNoLeakedHandles } from '../../testing/leak-check.ts'
import { openSessionPair, type SessionPair } from '../../testing/session-pair.ts'
import { SessionRegistry } from './session-registry.ts'

checkNoLeakedHandles()

const noop = { data() {}, end() {}, lost() {}, writable() {} }

async function withPairs(count: number, options: Parameters<typeof openSessionPair>[0], body: (pairs: SessionPair[]) => Promise<void>): Promise<void> {
  const pairs: SessionPair[] = []
  try {
    for (let i = 0; i < count; i++) pairs.push(await openSessionPair(options))
    await body(pairs)
  } finally {
    await Promise.all(pairs.map((p) => p.close()))
  }
}

test('a tunnel goes up with its first session and down with its last, once each', async () => {
  await withPairs(2, { tunnelId: 't1' }, async ([a, b]) => {
    const registry = new SessionRegistry()
    const events: string[] = []
    registry.on('tunnel-up', (id: string) => events.push(`up ${id}`))
    registry.on('tunnel-down', (id: string) => events.push(`down ${id}`))
    registry.add(a!.session)
    registry.add(b!.session)
    assert.deepEqual(events, ['up t1'])
    assert.equal(registry.size, 2)
    a!.session.destroy()
    assert.deepEqual(events, ['up t1'], 'one session left: still up')
    assert.equal(registry.isConnected('t1'), true)
    b!.session.destroy()
    assert.deepEqual(events, ['up t1', 'down t1'])
    assert.equal(registry.size, 0)
    assert.equal(registry.isConnected('t1'), false)
  })
})

test('a session that closed before it was registered is not added (its closed event is gone)', async () => {
  await withPairs(1, { tunnelId: 't1' }, async ([a]) => {
    const registry = new SessionRegistry()
    let ups = 0
    registry.on('tunnel-up', () => ups++)
    a!.session.destroy()
    registry.add(a!.session)
    assert.equal(ups, 0)
    assert.equal(registry.size, 0)
  })
})

test('pick() hands out the open session with the fewest relays, and skips a draining one', async () => {
  await withPairs(2, { tunnelId: 't1' }, async ([a, b]) => {
    const registry = new SessionRegistry()
    registry.add(a!.session)
    registry.add(b!.session)
    const first = registry.pick('t1')!
    first.openRelay('192.0.2.1', noop)
    const other = first === a!.session ? b!.session : a!.session
    assert.equal(registry.pick('t1'), other, 'the idle one')
    other.openRelay('192.0.2.2', noop)
    other.openRelay('192.0.2.3', noop)
    assert.equal(registry.pick('t1'), first, 'now the other is busier')
    // Draining: keeps its relays, takes no new ones.
    void first.close()
    assert.equal(registry.pick('t1'), other)
    assert.equal(registry.pick('another tunnel'), undefined)
  })
})

test('isFull() tells a tunnel whose sessions carry their maximum from one that is down', async () => {
  await withPairs(1, { tunnelId: 't1', agentMaxStreams: 1 }, async ([a]) => {
    const registry = new SessionRegistry()
    registry.add(a!.session)
    assert.equal(registry.isFull('t1', 10), false)
    a!.session.openRelay('192.0.2.1', noop)
    assert.equal(registry.pick('t1'), undefined, 'the agent takes one relay at a time')
    assert.equal(registry.isFull('t1', 10), true, 'full, not down')
    assert.equal(registry.isFull('t2', 10), false)
  })
  await withPairs(1, { tunnelId: 't1' }, async ([a]) => {
    const registry = new SessionRegistry()
    registry.add(a!.session)
    a!.session.openRelay('192.0.2.1', noop)
    assert.equal(registry.isFull('t1', 1), true, "the server's own limit counts too")
  })
})

test('revokeTunnel() tells each agent of the tunnel why and ends only its sessions', async () => {
  await withPairs(3, {}, async ([a, b, c]) => {
    const registry = new SessionRegistry()
    const other = await openSessionPair({ tunnelId: 't2' })
    try {
      for (const p of [a!, b!, c!, other]) registry.add(p.session)
      registry.revokeTunnel('tunnel-1', new TunnelError('TUN_ERR_TUNNEL_NOT_FOUND', 'tunnel deleted'))
      assert.deepEqual(registry.sessionsOf('tunnel-1'), [])
      assert.equal(registry.sessionsOf('t2').length, 1)
      for (const p of [a!, b!, c!]) {
        await eventually(() => p.agent.controls.some((m) => m.t === 'revoke'), 'the agent hears the revocation')
        assert.deepEqual(p.agent.controls.find((m) => m.t === 'revoke'), { t: 'revoke', code: 'TUN_ERR_TUNNEL_NOT_FOUND', reason: 'tunnel deleted' })
      }
      assert.equal(other.agent.controls.some((m) => m.t === 'revoke'), false)
    } finally {
      await other.close()
    }
  })
})

test('closeAll() drains every session: GOAWAY, open relays finish, then each closes', async () => {
  await withPairs(2, { tunnelId: 't1' }, async ([a, b]) => {
    const registry = new SessionRegistry()
    registry.add(a!.session)
    registry.add(b!.session)
    const relay = a!.session.openRelay('192.0.2.1', noop)
    const closing = registry.closeAll()
    const stream = await a!.agent.stream(0)
    assert.equal(registry.pick('t1'), undefined, 'no new relays while draining')
    assert.equal(a!.session.closed, false, 'the open relay holds its session')
    stream.accept()
    relay.end()
    stream.stream.end()
    await closing
    assert.equal(registry.size, 0)
  })
})

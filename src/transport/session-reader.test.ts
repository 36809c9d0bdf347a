import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setImmediate as nextLoop } from 'node:timers/promises'
import { eventually } from '../testing/eventually.ts'
import { socketPair } from '../testing/session-pair.ts'
import { SESSION_READ_BUFFER, SessionReader, acceptedSessionReader } from './session-reader.ts'

test('reads between two owners wait as copies, in order, and reach the next owner from the event loop', async () => {
  const reader = new SessionReader()
  const shared = Buffer.alloc(8)
  const read = (text: string): void => {
    shared.write(text.padEnd(8, '.'))
    reader.deliver(shared.subarray(0, text.length))
    shared.fill(0) // the buffer is reused: what waits must not see this
  }
  const first: string[] = []
  reader.attach((c) => first.push(c.toString()))
  read('head')
  assert.deepEqual(first, ['head'], 'an owner with nothing waiting gets each read at once')

  // The handshake owner read a little past its part: that goes first to the session.
  reader.detach(Buffer.from('rest'))
  read('one')
  read('two')
  const second: string[] = []
  reader.attach((c) => second.push(c.toString()))
  assert.deepEqual(second, [], 'nothing is delivered inside attach()')
  read('three') // arrives while the earlier reads still wait: queued behind them
  await nextLoop()
  read('four')
  assert.deepEqual(second, ['rest', 'one', 'two', 'three', 'four'])
  assert.deepEqual(first, ['head'], 'the first owner hears nothing after it detached')
})

test('an owner that detaches while it handles a waiting read leaves the rest for the next one', async () => {
  const reader = new SessionReader()
  reader.deliver(Buffer.from('a'))
  reader.deliver(Buffer.from('b'))
  reader.deliver(Buffer.from('c'))
  const first: string[] = []
  reader.attach((c) => {
    first.push(c.toString())
    if (first.length === 1) reader.detach()
  })
  await nextLoop()
  const second: string[] = []
  reader.attach((c) => second.push(c.toString()))
  await nextLoop()
  assert.deepEqual(first, ['a'])
  assert.deepEqual(second, ['b', 'c'])
})

test("an accepted session connection: the bytes read past the upgrade come first, then the socket's reads from the shared buffer", async () => {
  const [accepted, peer] = await socketPair()
  try {
    const reader = acceptedSessionReader(accepted, Buffer.from('past-the-head|'))
    const got: Array<{ text: string; shared: boolean }> = []
    reader.attach((c) => got.push({ text: c.toString(), shared: c.buffer === SESSION_READ_BUFFER.buffer }))
    peer.write('first-read')
    await eventually(() => got.length === 2, 'the head and the first read')
    assert.deepEqual(got, [
      { text: 'past-the-head|', shared: false },
      { text: 'first-read', shared: true },
    ])
  } finally {
    peer.destroy()
    accepted.destroy()
  }
})

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setImmediate as nextLoop } from 'node:timers/promises'
import { SessionReader } from './session-reader.ts'

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

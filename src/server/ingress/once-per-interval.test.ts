import assert from 'node:assert/strict'
import { test } from 'node:test'
import { OncePerInterval } from './once-per-interval.ts'

function fakeClock(): { now(): number; advance(ms: number): void } {
  let t = 1_000_000
  return { now: () => t, advance: (ms) => (t += ms) }
}

test('one event per key per interval, each key on its own', () => {
  const clock = fakeClock()
  const once = new OncePerInterval(60_000, clock)
  assert.equal(once.take('a'), true)
  assert.equal(once.take('a'), false)
  assert.equal(once.take('b'), true, 'another key is not held back')
  clock.advance(59_999)
  assert.equal(once.take('a'), false)
  clock.advance(1)
  assert.equal(once.take('a'), true, 'a minute later it is let through again')
  assert.equal(once.take('a'), false)
})

test('keys whose interval has passed are swept once many are held', () => {
  const clock = fakeClock()
  const once = new OncePerInterval(60_000, clock)
  for (let i = 0; i < 1024; i++) once.take(`old ${i}`)
  clock.advance(60_000)
  for (let i = 0; i < 10; i++) once.take(`new ${i}`)
  assert.equal(once.size, 10)
  assert.equal(once.take('new 0'), false, 'recent keys are kept')
})

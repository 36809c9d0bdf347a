import { test } from 'node:test'
import assert from 'node:assert/strict'
import { AuthFailureLimiter } from './auth-failure-limiter.ts'

function clock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start
  return { now: () => t, advance: (ms) => (t += ms) }
}

test('defaults', () => {
  const l = new AuthFailureLimiter()
  assert.equal(l.maxFailures, 20)
  assert.equal(l.windowMs, 60_000)
  assert.equal(l.isBlocked('198.51.100.1'), false)
})

test('blocks after maxFailures within the window', () => {
  const c = clock()
  const l = new AuthFailureLimiter({ maxFailures: 3, windowMs: 10_000, now: c.now })
  const a = '198.51.100.1'
  for (let i = 0; i < 2; i++) {
    l.recordFailure(a)
    c.advance(1000)
    assert.equal(l.isBlocked(a), false, `after ${i + 1} failures`)
  }
  l.recordFailure(a)
  assert.equal(l.isBlocked(a), true)
  c.advance(6_999) // 9 999 ms after the first failure: still in the window
  assert.equal(l.isBlocked(a), true)
})

test('unblocks once the window has passed', () => {
  const c = clock()
  const l = new AuthFailureLimiter({ maxFailures: 2, windowMs: 10_000, now: c.now })
  const a = '198.51.100.1'
  l.recordFailure(a)
  l.recordFailure(a)
  assert.equal(l.isBlocked(a), true)
  c.advance(10_000)
  assert.equal(l.isBlocked(a), false)
  // A fresh window starts with the next failure.
  l.recordFailure(a)
  assert.equal(l.isBlocked(a), false)
  l.recordFailure(a)
  assert.equal(l.isBlocked(a), true)
})

test('failures spread over more than one window do not block', () => {
  const c = clock()
  const l = new AuthFailureLimiter({ maxFailures: 3, windowMs: 1000, now: c.now })
  const a = '198.51.100.1'
  for (let i = 0; i < 10; i++) {
    l.recordFailure(a)
    l.recordFailure(a)
    assert.equal(l.isBlocked(a), false, `window ${i}`)
    c.advance(1000)
  }
})

test('counts per address', () => {
  const c = clock()
  const l = new AuthFailureLimiter({ maxFailures: 2, windowMs: 10_000, now: c.now })
  l.recordFailure('198.51.100.1')
  l.recordFailure('198.51.100.1')
  l.recordFailure('2001:db8::1')
  assert.equal(l.isBlocked('198.51.100.1'), true)
  assert.equal(l.isBlocked('2001:db8::1'), false)
  assert.equal(l.isBlocked('203.0.113.9'), false)
})

test('bounded tracking evicts the oldest address first', () => {
  const c = clock()
  const l = new AuthFailureLimiter({ maxFailures: 1, windowMs: 60_000, now: c.now, maxTracked: 3 })
  for (const a of ['a', 'b', 'c']) {
    l.recordFailure(a)
    c.advance(1)
  }
  assert.ok(['a', 'b', 'c'].every((a) => l.isBlocked(a)))
  l.recordFailure('d')
  assert.equal(l.isBlocked('a'), false, 'oldest evicted')
  assert.equal(l.isBlocked('b'), true)
  assert.equal(l.isBlocked('c'), true)
  assert.equal(l.isBlocked('d'), true)
  l.recordFailure('e')
  assert.equal(l.isBlocked('b'), false, 'next oldest evicted')
  assert.ok(['c', 'd', 'e'].every((a) => l.isBlocked(a)))
})

test('a further failure of a tracked address evicts nothing', () => {
  const c = clock()
  const l = new AuthFailureLimiter({ maxFailures: 2, windowMs: 60_000, now: c.now, maxTracked: 2 })
  l.recordFailure('a')
  l.recordFailure('b')
  l.recordFailure('a')
  l.recordFailure('b')
  assert.equal(l.isBlocked('a'), true)
  assert.equal(l.isBlocked('b'), true)
})

test('tracking stays bounded under many addresses', () => {
  const c = clock()
  const l = new AuthFailureLimiter({ maxFailures: 1, windowMs: 60_000, now: c.now, maxTracked: 50 })
  for (let i = 0; i < 1000; i++) l.recordFailure(`10.0.${i >> 8}.${i & 255}`)
  let blocked = 0
  for (let i = 0; i < 1000; i++) if (l.isBlocked(`10.0.${i >> 8}.${i & 255}`)) blocked++
  assert.equal(blocked, 50)
  assert.equal(l.isBlocked('10.0.3.231'), true, 'the newest is kept')
})

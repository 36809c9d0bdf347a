import assert from 'node:assert/strict'
import { test } from 'node:test'
import { LoginLimiter } from './login-limiter.ts'

function clock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1_000_000
  return { now: () => t, advance: (ms) => (t += ms) }
}

test('one address guessing is blocked after its failures, for every user name', () => {
  const c = clock()
  const l = new LoginLimiter({ maxFailuresPerAddress: 3, maxFailuresPerUser: 100, windowMs: 60_000, now: c.now })
  for (const u of ['a', 'b', 'c']) {
    assert.equal(l.isBlocked('198.51.100.7', u), false)
    l.recordFailure('198.51.100.7', u)
  }
  assert.equal(l.isBlocked('198.51.100.7', 'someone-else'), true)
  assert.equal(l.isBlocked('198.51.100.8', 'someone-else'), false, 'another address is not')
  c.advance(60_000)
  assert.equal(l.isBlocked('198.51.100.7', 'someone-else'), false, 'the window passes')
})

test('one user name guessed from many addresses is blocked, whatever the case', () => {
  const c = clock()
  const l = new LoginLimiter({ maxFailuresPerAddress: 100, maxFailuresPerUser: 3, windowMs: 60_000, now: c.now })
  for (let i = 0; i < 3; i++) l.recordFailure(`203.0.113.${i}`, i === 1 ? 'ADMIN' : 'admin')
  assert.equal(l.isBlocked('203.0.113.99', 'admin'), true)
  assert.equal(l.isBlocked('203.0.113.99', 'Admin'), true)
  assert.equal(l.isBlocked('203.0.113.99', 'operator'), false)
})

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { deriveClusterKey } from './auth/auth-transcript.ts'
import { KeyRing } from './key-ring.ts'

function fakeClock(start = 1_000_000): { now(): number; advance(ms: number): void } {
  let t = start
  return { now: () => t, advance: (ms) => void (t += ms) }
}

test('rotation: the previous key is accepted within the grace and refused from its end on', () => {
  const clock = fakeClock()
  const ring = new KeyRing({ graceMs: 150_000, clock })
  assert.equal(ring.mode, 'no-key')
  assert.equal(ring.current(), undefined)
  const a = deriveClusterKey('A')
  const b = deriveClusterKey('B')
  assert.deepEqual(ring.adopt('A'), { mode: 'enabled', kid: a.kidHex, previousKid: null })
  assert.equal(ring.adopt('A'), undefined, 'the same value changes nothing')
  assert.equal(ring.accepted(a.kid)?.kidHex, a.kidHex)
  assert.equal(ring.accepted(b.kid), undefined)

  assert.deepEqual(ring.adopt('B'), { mode: 'enabled', kid: b.kidHex, previousKid: a.kidHex })
  assert.equal(ring.current()?.kidHex, b.kidHex)
  assert.equal(ring.accepted(a.kid)?.kidHex, a.kidHex, 'old key within grace')
  assert.equal(ring.stillAccepts(a.kidHex), true)
  clock.advance(149_999)
  assert.ok(ring.accepted(a.kid))
  clock.advance(1)
  assert.equal(ring.accepted(a.kid), undefined, 'old key after grace')
  assert.equal(ring.stillAccepts(a.kidHex), false)
  assert.equal(ring.state().previousKid, null)
  assert.equal(ring.accepted(b.kid)?.kidHex, b.kidHex)
})

test('only one previous key: a second rotation within the grace retires the oldest at once', () => {
  const ring = new KeyRing({ graceMs: 60_000, clock: fakeClock() })
  ring.adopt('A')
  ring.adopt('B')
  ring.adopt('C')
  assert.equal(ring.accepted(deriveClusterKey('A').kid), undefined)
  assert.ok(ring.accepted(deriveClusterKey('B').kid))
  assert.ok(ring.accepted(deriveClusterKey('C').kid))
})

test('an empty value disables at run time and forgets every key; a new value re-enables without grace', () => {
  const ring = new KeyRing({ graceMs: 60_000, clock: fakeClock() })
  ring.adopt('A')
  assert.deepEqual(ring.adopt(''), { mode: 'disabled-at-run-time', kid: null, previousKid: null })
  assert.equal(ring.current(), undefined)
  assert.equal(ring.accepted(deriveClusterKey('A').kid), undefined)
  assert.equal(ring.stillAccepts(deriveClusterKey('A').kidHex), true, 'links proven before stay while auth is off')
  assert.deepEqual(ring.adopt('B'), { mode: 'enabled', kid: deriveClusterKey('B').kidHex, previousKid: null })
  assert.equal(ring.accepted(deriveClusterKey('A').kid), undefined, 'the key from before the disable does not come back')
})

test('disabled at start ignores every value', () => {
  const ring = new KeyRing({ disabledAtStart: true, graceMs: 1000 })
  assert.equal(ring.adopt('A'), undefined)
  assert.equal(ring.mode, 'disabled-at-start')
  assert.equal(ring.current(), undefined)
  assert.equal(ring.stillAccepts(deriveClusterKey('A').kidHex), false)
})

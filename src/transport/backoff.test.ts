import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Backoff } from './backoff.ts'

const LOW = () => 0
const HIGH = () => 0.9999999

test('first delay with defaults comes within initialMs (within a second)', () => {
  for (const random of [LOW, HIGH]) {
    const first = new Backoff({ random }).next()
    assert.ok(first <= 500, `first delay ${first}`)
    assert.ok(first < 1000)
    assert.ok(first >= 250)
  }
  assert.equal(new Backoff({ random: LOW }).next(), 250)
  assert.equal(new Backoff({ random: HIGH }).next(), 500)
})

test('delays double on each attempt', () => {
  const low = new Backoff({ initialMs: 100, maxMs: 1_000_000, random: LOW })
  const high = new Backoff({ initialMs: 100, maxMs: 1_000_000, random: HIGH })
  const lows = Array.from({ length: 6 }, () => low.next())
  const highs = Array.from({ length: 6 }, () => high.next())
  assert.deepEqual(lows, [50, 100, 200, 400, 800, 1600])
  assert.deepEqual(highs, [100, 200, 400, 800, 1600, 3200])
  assert.equal(low.attempts, 6)
})

test('delays are capped at maxMs', () => {
  const high = new Backoff({ random: HIGH })
  const low = new Backoff({ random: LOW })
  let lastHigh = 0
  let lastLow = 0
  for (let i = 0; i < 50; i++) {
    lastHigh = high.next()
    lastLow = low.next()
    assert.ok(lastHigh <= 30_000, `attempt ${i}: ${lastHigh}`)
  }
  assert.equal(lastHigh, 30_000)
  assert.equal(lastLow, 15_000)
})

test('a huge number of attempts stays finite and capped', () => {
  const b = new Backoff({ initialMs: 1000, maxMs: 5000, random: HIGH })
  for (let i = 0; i < 200; i++) {
    const d = b.next()
    assert.ok(Number.isFinite(d) && d <= 5000)
  }
})

test('reset() starts over', () => {
  const b = new Backoff({ initialMs: 100, maxMs: 10_000, random: HIGH })
  b.next()
  b.next()
  b.next()
  assert.equal(b.attempts, 3)
  b.reset()
  assert.equal(b.attempts, 0)
  assert.equal(b.next(), 100)
  assert.equal(b.next(), 200)
})

test('jitter stays within [step/2, step]', () => {
  const values = [0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.9999999]
  let k = 0
  const random = () => values[k++ % values.length]!
  const initialMs = 300
  const maxMs = 20_000
  const b = new Backoff({ initialMs, maxMs, random })
  for (let attempt = 0; attempt < 40; attempt++) {
    const step = Math.min(maxMs, initialMs * 2 ** attempt)
    const d = b.next()
    assert.ok(d >= step / 2 && d <= step, `attempt ${attempt}: ${d} not in [${step / 2}, ${step}]`)
  }
})

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { CredentialCache } from './credential-cache.ts'

function clock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start
  return { now: () => t, advance: (ms) => (t += ms) }
}

/** A lookup that counts its calls and answers from a map the test changes. */
function source(initial: Record<string, string>) {
  const rows = new Map(Object.entries(initial))
  const s = {
    rows,
    calls: 0,
    load: async (key: string): Promise<string | undefined> => {
      s.calls++
      return rows.get(key)
    },
  }
  return s
}

test('a found key and a missing key are each looked up once within the TTL, again after it', async () => {
  const c = clock()
  const db = source({ a: 'A' })
  const cache = new CredentialCache<string>({ ttlMs: 5_000, now: c.now })
  assert.equal(await cache.get('a', db.load), 'A')
  assert.equal(await cache.get('zz', db.load), undefined)
  assert.equal(db.calls, 2)
  c.advance(4_999)
  assert.deepEqual(cache.peek('a'), { value: 'A' })
  assert.deepEqual(cache.peek('zz'), { value: undefined }, 'a negative entry is an answer too')
  assert.equal(await cache.get('a', db.load), 'A')
  assert.equal(db.calls, 2)
  c.advance(1)
  assert.equal(cache.peek('a'), undefined, 'expired at ttlMs')
  db.rows.delete('a')
  assert.equal(await cache.get('a', db.load), undefined)
  assert.equal(db.calls, 3)
})

test('invalidate drops the entry at once, before its TTL', async () => {
  const c = clock()
  const db = source({ a: 'A' })
  const cache = new CredentialCache<string>({ ttlMs: 60_000, now: c.now })
  await cache.get('a', db.load)
  db.rows.delete('a')
  cache.invalidate('a')
  assert.equal(cache.peek('a'), undefined)
  assert.equal(await cache.get('a', db.load), undefined)
})

test('invalidateWhere drops entries by value', async () => {
  const cache = new CredentialCache<{ id: string }>({ ttlMs: 60_000 })
  await cache.get('h1', async () => ({ id: 't1' }))
  await cache.get('h2', async () => ({ id: 't2' }))
  cache.invalidateWhere((v) => v.id === 't1')
  assert.equal(cache.peek('h1'), undefined)
  assert.deepEqual(cache.peek('h2'), { value: { id: 't2' } })
})

test('a lookup in flight when the key is invalidated does not store its stale answer', async () => {
  const cache = new CredentialCache<string>({ ttlMs: 60_000 })
  let release!: (v: string) => void
  const pending = cache.get('a', () => new Promise<string>((r) => (release = r)))
  cache.invalidate('a')
  release('stale')
  assert.equal(await pending, 'stale', 'the caller that asked before the revocation gets what it read')
  assert.equal(cache.peek('a'), undefined, 'but nothing is kept')
})

test('concurrent misses for one key share one lookup', async () => {
  const db = source({ a: 'A' })
  const cache = new CredentialCache<string>({ ttlMs: 60_000 })
  const answers = await Promise.all(Array.from({ length: 10 }, () => cache.get('a', db.load)))
  assert.deepEqual(answers, Array(10).fill('A'))
  assert.equal(db.calls, 1)
})

test('bounded: spraying keys evicts the oldest entries, the size never passes maxEntries', async () => {
  const db = source({})
  const cache = new CredentialCache<string>({ ttlMs: 60_000, maxEntries: 100 })
  await cache.get('first', async () => 'kept?')
  for (let i = 0; i < 1_000; i++) {
    await cache.get(`random-${i}`, db.load)
    assert.ok(cache.size <= 100)
  }
  assert.equal(cache.size, 100)
  assert.equal(cache.peek('first'), undefined, 'the oldest went first')
  assert.deepEqual(cache.peek('random-999'), { value: undefined })
})

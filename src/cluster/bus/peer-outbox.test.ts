import assert from 'node:assert/strict'
import { test } from 'node:test'
import { DuplicateFilter } from './duplicate-filter.ts'
import { PeerOutbox } from './peer-outbox.ts'

const frame = (n: number): Buffer => Buffer.from(String(n))

test('outbox: resend cursor, cumulative acks, and a bound that drops the oldest', () => {
  const o = new PeerOutbox(100)
  for (let seq = 1; seq <= 150; seq++) o.push(seq * 2, frame(seq * 2)) // sparse sequence numbers: a peer sees a subset
  assert.equal(o.size, 100)
  assert.equal(o.dropped, 50)
  assert.equal(o.nextAfter(0)?.seq, 102, 'the oldest 50 were dropped')
  assert.equal(o.nextAfter(150)?.seq, 152)
  assert.equal(o.nextAfter(151)?.seq, 152)
  assert.equal(o.nextAfter(300), undefined)
  o.ack(201)
  assert.equal(o.size, 50)
  assert.equal(o.nextAfter(0)?.seq, 202, 'a link that comes back resends from the oldest unacknowledged')
  o.ack(300)
  assert.equal(o.size, 0)
  assert.equal(o.nextAfter(0), undefined)
})

test('duplicate filter: per sender, in order, bounded', () => {
  const f = new DuplicateFilter(2)
  assert.equal(f.isNew('a/1', 1), true)
  assert.equal(f.isNew('a/1', 1), false)
  assert.equal(f.isNew('a/1', 2), true)
  assert.equal(f.isNew('a/2', 1), true, 'a restarted sender (new incarnation) starts over')
  assert.equal(f.isNew('b/1', 1), true)
  assert.equal(f.isNew('a/1', 2), true, 'a/1 was heard from longest ago and was forgotten')
})

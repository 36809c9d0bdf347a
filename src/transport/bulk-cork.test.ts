import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, connect, type Socket } from 'node:net'
import { once } from 'node:events'
import { countWrites } from '../testing/count-writes.ts'
import { BULK_CHUNK_BYTES, BulkCork } from './bulk-cork.ts'

/** A connected pair on loopback; `received` resolves with everything the far side read once it ended. */
async function socketPair(): Promise<{ near: Socket; received: Promise<Buffer>; close(): void }> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as { port: number }).port
  const accepted = once(server, 'connection') as Promise<[Socket]>
  const near = connect({ host: '127.0.0.1', port })
  await once(near, 'connect')
  const [far] = await accepted
  const received = (async () => {
    const parts: Buffer[] = []
    for await (const c of far) parts.push(c as Buffer)
    return Buffer.concat(parts)
  })()
  return { near, received, close: () => { near.destroy(); far.destroy(); server.close() } }
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve))

test('bulk-sized chunks written in one turn leave in one writev, at the next setImmediate', async (t) => {
  const { near, received, close } = await socketPair()
  t.after(close)
  const counts = countWrites(near)
  const cork = new BulkCork(near)
  const chunks = [0, 1, 2, 3].map((i) => Buffer.alloc(16 * 1024, i))
  for (const c of chunks) {
    near.cork()
    near.write(c)
    cork.uncork(c.length)
  }
  // Nothing went to the kernel yet: the four records wait for the end of this turn.
  assert.equal(near.writableCorked, 1)
  assert.equal(near.writableLength, 4 * 16 * 1024)
  await nextTurn()
  assert.equal(near.writableCorked, 0)
  assert.deepEqual(counts, { single: 0, vectored: 1 })
  near.end()
  assert.deepEqual(await received, Buffer.concat(chunks))
})

test('a small chunk is uncorked at once', async (t) => {
  const { near, received, close } = await socketPair()
  t.after(close)
  const counts = countWrites(near)
  const cork = new BulkCork(near)
  const answer = Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok')
  assert.ok(answer.length < BULK_CHUNK_BYTES)
  near.cork()
  near.write(answer)
  cork.uncork(answer.length)
  assert.equal(near.writableCorked, 0)
  assert.deepEqual(counts, { single: 1, vectored: 0 })
  near.end()
  assert.deepEqual(await received, answer)
})

test('a small chunk after a bulk one in the same turn waits with it; the turn after starts afresh', async (t) => {
  const { near, received, close } = await socketPair()
  t.after(close)
  const counts = countWrites(near)
  const cork = new BulkCork(near)
  const bulk = Buffer.alloc(BULK_CHUNK_BYTES, 7)
  const tail = Buffer.from('the last bytes')
  for (const c of [bulk, tail]) {
    near.cork()
    near.write(c)
    cork.uncork(c.length)
  }
  assert.equal(near.writableLength, bulk.length + tail.length)
  await nextTurn()
  assert.deepEqual(counts, { single: 0, vectored: 1 })
  near.cork()
  near.write(tail)
  cork.uncork(tail.length)
  assert.deepEqual(counts, { single: 1, vectored: 1 })
  near.end()
  assert.deepEqual(await received, Buffer.concat([bulk, tail, tail]))
})

test('end() while a bulk chunk is held back sends it; the uncork that follows is harmless', async (t) => {
  const { near, received, close } = await socketPair()
  t.after(close)
  const cork = new BulkCork(near)
  const bulk = Buffer.alloc(64 * 1024, 3)
  near.cork()
  near.write(bulk)
  cork.uncork(bulk.length)
  near.end()
  await nextTurn()
  assert.equal(near.writableCorked, 0)
  assert.deepEqual(await received, bulk)
})

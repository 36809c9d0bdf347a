import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { connect, createServer } from 'node:net'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { connect as tlsConnect, createServer as createTlsServer, type TLSSocket } from 'node:tls'
import { eventually } from '../testing/eventually.ts'
import { checkNoLeakedHandles } from '../testing/leak-check.ts'
import { socketPair } from '../testing/session-pair.ts'
import { acceptedSocketsReadIntoBuffer, readIntoBuffer } from './accepted-socket-reads.ts'
import { generateSelfSigned } from './self-signed-certificate.ts'

checkNoLeakedHandles()

/** What the accepted side was handed: each chunk's bytes, and whether it was a view of the buffer. */
function recorder(buffer: Buffer): { chunks: Array<{ text: string; inBuffer: boolean }>; onRead(chunk: Buffer): void } {
  const chunks: Array<{ text: string; inBuffer: boolean }> = []
  return {
    chunks,
    onRead(chunk) {
      chunks.push({ text: chunk.toString('latin1'), inBuffer: chunk.buffer === buffer.buffer })
      // The buffer is the reader's to reuse once this returns: nothing may rely on it afterwards.
      buffer.fill(0x2a)
    },
  }
}

test('this Node lets an accepted socket read into a buffer of ours (the server relies on it; decision 57)', () => {
  assert.equal(acceptedSocketsReadIntoBuffer, true)
})

test('an accepted TCP socket reads into the buffer: bytes read before come first, pause holds reads back, end and close still come', async () => {
  const [socket, client] = await socketPair()
  try {
    client.write('early')
    // Read by the stream already, before the switch: it must not be lost or reordered.
    await eventually(() => socket.readableLength === 5, 'the early bytes are read into the stream')
    const buffer = Buffer.alloc(64)
    const seen = recorder(buffer)
    assert.equal(readIntoBuffer(socket, buffer, seen.onRead), true)
    assert.deepEqual(seen.chunks, [{ text: 'early', inBuffer: false }])

    client.write('second')
    await eventually(() => seen.chunks.length === 2, 'the next read')
    assert.deepEqual(seen.chunks[1], { text: 'second', inBuffer: true })

    socket.pause()
    client.write('third')
    await sleep(50)
    assert.equal(seen.chunks.length, 2, 'a paused socket hands over nothing')
    socket.resume()
    await eventually(() => seen.chunks.length === 3, 'the read held back while paused')
    assert.deepEqual(seen.chunks[2], { text: 'third', inBuffer: true })

    const ended = once(socket, 'end')
    client.end()
    await ended
    socket.end()
    await once(socket, 'close')
  } finally {
    client.destroy()
    socket.destroy()
  }
})

test('an accepted TLS socket hands over decrypted bytes from the buffer, every byte in order', async () => {
  const { key, cert } = await generateSelfSigned(['localhost'])
  const received = createHash('sha256')
  let bytes = 0
  let inBuffer = 0
  let switched: boolean | undefined
  const buffer = Buffer.alloc(16 * 1024)
  const server = createTlsServer({ key, cert }, (socket: TLSSocket) => {
    switched = readIntoBuffer(socket, buffer, (chunk) => {
      received.update(chunk)
      bytes += chunk.length
      if (chunk.buffer === buffer.buffer) inBuffer++
      buffer.fill(0x2a)
    })
    socket.on('end', () => socket.end())
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const client = tlsConnect({ port: (server.address() as { port: number }).port, host: '127.0.0.1', rejectUnauthorized: false })
  try {
    await once(client, 'secureConnect')
    const sent = createHash('sha256')
    const block = Buffer.alloc(64 * 1024)
    for (let i = 0; i < 32; i++) {
      block.fill(i * 7 + 1)
      block.writeUInt32BE(i, 0)
      sent.update(block)
      if (!client.write(block)) await once(client, 'drain')
    }
    client.end()
    await once(client, 'close')
    assert.equal(switched, true)
    assert.equal(bytes, 32 * 64 * 1024)
    assert.equal(received.digest('hex'), sent.digest('hex'))
    assert.ok(inBuffer > 0, 'the reads came through the buffer')
  } finally {
    client.destroy()
    server.close()
  }
})

test('a socket that already reads into a buffer of its own, or is destroyed, is left as it is', async () => {
  const server = createServer((s) => s.destroy())
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const own = Buffer.alloc(16)
  const socket = connect({ port: (server.address() as { port: number }).port, host: '127.0.0.1', onread: { buffer: own, callback: () => true } })
  try {
    await once(socket, 'connect')
    assert.equal(readIntoBuffer(socket, Buffer.alloc(16), () => assert.fail('no read goes to a second reader')), false)
    socket.destroy()
    assert.equal(readIntoBuffer(socket, Buffer.alloc(16), () => {}), false)
  } finally {
    socket.destroy()
    server.close()
  }
})

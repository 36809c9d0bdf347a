import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { Http1Limits } from './http1-limits.ts'
import type { ResponseHead } from './response-head.ts'
import { ResponseFramer } from './response-framer.ts'
import { EventRecorder, oneByteChunks } from '../../testing/http1/event-recorder.ts'
import { assertTunnelError } from '../../testing/http1/assert-tunnel-error.ts'

const BAD_RESPONSE = 'TUN_ERR_UPSTREAM_BAD_RESPONSE'

function bytes(text: string): Buffer {
  return Buffer.from(text, 'latin1')
}

function frame(input: string | ReadonlyArray<string>, methods: readonly string[] = [], limits?: Partial<Http1Limits>) {
  const recorder = new EventRecorder()
  const framer = new ResponseFramer(recorder.response, limits)
  for (const method of methods) framer.expect(method)
  for (const part of typeof input === 'string' ? [input] : input) framer.push(bytes(part))
  return { recorder, framer, heads: recorder.heads<ResponseHead>(), events: recorder.normalized() }
}

/** Events with heads reduced to their status code, for compact sequence assertions. */
function outline(events: unknown[]): unknown[] {
  return events.map((e) => (typeof e === 'object' && e !== null && 'head' in e ? (e as { head: ResponseHead }).head.statusCode : e))
}

function refuse(input: string, message: string | RegExp, methods: readonly string[] = [], limits?: Partial<Http1Limits>): void {
  assertTunnelError(() => frame(input, methods, limits), BAD_RESPONSE, message, 'whole: ')
  assertTunnelError(() => frame(oneByteChunks(bytes(input)).map((b) => b.toString('latin1')), methods, limits), BAD_RESPONSE, message, 'byte by byte: ')
}

describe('ResponseFramer: status line', () => {
  it('parses version, status and reason', () => {
    const { events } = frame('HTTP/1.0 404 Not  Found\xe9\r\nContent-Length: 0\r\n\r\n')
    assert.deepEqual((events[0] as { head: unknown }).head, {
      statusCode: 404,
      reason: 'Not  Found\xe9',
      versionMinor: 0,
      headers: [['Content-Length', '0']],
      body: { kind: 'length', length: 0 },
      keepAlive: false,
    })
  })

  it('accepts an empty reason with or without the second SP', () => {
    assert.equal(frame('HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n').heads[0]!.reason, '')
    assert.equal(frame('HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n').heads[0]!.reason, '')
  })

  const table: Array<[string, string | RegExp]> = [
    ['HTTP/2 200 OK\r\n\r\n', 'malformed HTTP version in the status line'],
    ['HTTP/2.0 200 OK\r\n\r\n', 'HTTP version HTTP/2.0 is not supported'],
    ['HTTP/1.1  200 OK\r\n\r\n', 'malformed status code'],
    ['HTTP/1.1 20 OK\r\n\r\n', 'malformed status code'],
    ['HTTP/1.1 099 OK\r\n\r\n', 'malformed status code'],
    ['HTTP/1.1 2000 OK\r\n\r\n', /unexpected '0' .* after the status code/],
    ['HTTP/1.1 200 O\x00K\r\n\r\n', 'invalid character 0x00 in reason phrase'],
    ['HTTP/1.1 200 OK\n\r\n', 'bare LF in status line'],
    ['HTTP/1.1 200 O\rK\r\n\r\n', 'bare CR in status line'],
    ['HTTP/1.1 200 OK\r\nX: 1\r\n continued\r\n\r\n', 'obs-fold (line starting with whitespace) in header line 2'],
    ['HTTP/1.1 200 OK\r\nContent-Length : 1\r\n\r\nx', 'whitespace between field name and colon in header line 1'],
    ['HTTP/1.1 200 OK\r\nX: a\x00\r\n\r\n', 'invalid character 0x00 in field value of header line 1'],
    ['<html>', "status line starts with '<' (0x3C)"],
  ]
  for (const [input, message] of table) {
    it(`refuses ${JSON.stringify(input.split('\r\n')[0])}`, () => refuse(input, message))
  }

  it('applies the head limits', () => {
    refuse(`HTTP/1.1 200 ${'x'.repeat(20)}`, 'status line longer than 16 bytes', [], { maxStartLineBytes: 16 })
    refuse(`HTTP/1.1 200 OK\r\nX: ${'x'.repeat(40)}`, 'head larger than 32 bytes', [], { maxHeadBytes: 32 })
    refuse('HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n', 'more than 1 header fields', [], { maxHeaderCount: 1 })
  })
})

describe('ResponseFramer: body framing', () => {
  it('frames Content-Length bodies and pipelined responses', () => {
    const { events, framer } = frame('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n', ['GET', 'POST'])
    assert.deepEqual(outline(events), [200, { body: 'abc' }, 'end', 201, 'end'])
    assert.equal(framer.pendingRequests, 0)
  })

  it('frames chunked bodies verbatim, trailers included', () => {
    const body = '3;x="y"\r\nabc\r\n0\r\nX-T: 1\r\n\r\n'
    const { events } = frame(`HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n${body}`)
    assert.deepEqual(outline(events), [200, { body }, 'end'])
  })

  it('reads until close when chunked is not the final coding, or there is no framing', () => {
    for (const te of ['gzip', 'chunked, gzip', 'identity']) {
      const { framer, heads } = frame(`HTTP/1.1 200 OK\r\nTransfer-Encoding: ${te}\r\nConnection: keep-alive\r\n\r\nxyz`)
      assert.deepEqual(heads[0]!.body, { kind: 'until-close' }, te)
      assert.equal(heads[0]!.keepAlive, false)
      assert.equal(framer.inMessage, true)
    }
    const { framer, recorder } = frame(['HTTP/1.1 200 OK\r\n\r\nabc', 'HTTP/1.1 200 OK\r\n\r\n'])
    framer.end()
    assert.deepEqual(outline(recorder.normalized()), [200, { body: 'abcHTTP/1.1 200 OK\r\n\r\n' }, 'end'])
    assert.equal(framer.state, 'closed')
    assert.equal(framer.inMessage, false)
  })

  it('gives HEAD, 204 and 304 responses no body whatever their headers say', () => {
    const { events, framer } = frame(
      'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n' +
        'HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n' +
        'HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n' +
        'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
      ['HEAD', 'GET', 'GET', 'GET'],
    )
    assert.deepEqual(outline(events), [200, 'end', 204, 'end', 304, 'end', 200, { body: 'ok' }, 'end'])
    assert.equal(framer.pendingRequests, 0)
  })

  it('reports interim 1xx heads without consuming the request queue', () => {
    const { events, framer } = frame(
      'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n',
      ['HEAD'],
    )
    // The 200 still answers the HEAD request: a 1xx does not consume it.
    assert.deepEqual(outline(events), [100, 103, 200, 'end'])
    assert.equal(framer.pendingRequests, 0)
    assert.equal(framer.state, 'head')
  })

  it('hands over after 101 with the rest of the chunk', () => {
    const { events, framer } = frame('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x00', ['GET', 'GET'])
    assert.deepEqual(outline(events), [101, { upgrade: '\x81\x00' }])
    assert.equal(framer.state, 'upgraded')
    assert.equal(framer.pendingRequests, 1)
    assertTunnelError(() => framer.push(bytes('x')), 'TUN_ERR_INTERNAL')
    framer.end()
  })

  it('calls onUpgrade with an empty rest when the head ends the chunk', () => {
    const { events } = frame(['HTTP/1.1 101 Switching Protocols\r\n', '\r\n'])
    assert.deepEqual(outline(events), [101, { upgrade: '' }])
  })

  it('treats a 2xx answer to CONNECT as a tunnel, other answers normally', () => {
    assert.deepEqual(outline(frame('HTTP/1.1 200 Connection Established\r\n\r\nraw', ['CONNECT']).events), [200, { upgrade: 'raw' }])
    assert.deepEqual(outline(frame('HTTP/1.1 407 No\r\nContent-Length: 1\r\n\r\nx', ['CONNECT']).events), [407, { body: 'x' }, 'end'])
  })

  it('parses a response with an empty queue as if for GET', () => {
    const { framer, heads } = frame('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
    assert.deepEqual(heads[0]!.body, { kind: 'length', length: 2 })
    assert.equal(framer.pendingRequests, 0)
  })

  it('accepts repeated identical Content-Length values, refuses conflicting ones', () => {
    assert.deepEqual(frame('HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nok').heads[0]!.body, { kind: 'length', length: 2 })
    refuse('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok', 'conflicting Content-Length values')
    refuse('HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok', 'conflicting Content-Length values')
    refuse('HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\nok', 'invalid Content-Length "-2"')
    refuse('HTTP/1.1 200 OK\r\nContent-Length: ,\r\n\r\nok', 'invalid Content-Length ","')
  })

  it('refuses ambiguous transfer codings', () => {
    refuse('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n', 'both Content-Length and Transfer-Encoding present')
    refuse('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n', 'chunked transfer coding applied more than once')
    refuse('HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', 'Transfer-Encoding in an HTTP/1.0 response')
    refuse('HTTP/1.1 200 OK\r\nTransfer-Encoding: ,\r\n\r\n', 'empty Transfer-Encoding header')
  })

  it('validates chunked response bodies', () => {
    refuse('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n', /missing CRLF after chunk data/)
    refuse('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nz\r\n', /in chunk size/)
    // Framing fields in a response trailer are the upstream's business, not a smuggling vector.
    assert.equal(frame('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nContent-Length: 1\r\n\r\n').framer.state, 'head')
  })

  it('derives keepAlive from version and Connection', () => {
    const keepAlive = (text: string) => frame(text).heads[0]!.keepAlive
    assert.equal(keepAlive('HTTP/1.1 204 No Content\r\n\r\n'), true)
    assert.equal(keepAlive('HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n'), false)
    assert.equal(keepAlive('HTTP/1.0 204 No Content\r\n\r\n'), false)
    assert.equal(keepAlive('HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n'), true)
    assert.equal(keepAlive('HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n\r\n'), false)
  })
})

describe('ResponseFramer: state and end()', () => {
  it('tracks pendingRequests and inMessage', () => {
    const recorder = new EventRecorder()
    const framer = new ResponseFramer(recorder.response)
    framer.expect('GET')
    framer.expect('GET')
    assert.equal(framer.pendingRequests, 2)
    assert.equal(framer.inMessage, false)
    framer.push(bytes('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab'))
    assert.equal(framer.inMessage, true)
    assert.equal(framer.pendingRequests, 1)
    assert.equal(framer.state, 'body')
    framer.push(bytes('cdHTTP/1.1 200'))
    assert.equal(framer.inMessage, false)
    assert.equal(framer.bufferedHeadBytes, 12)
  })

  it('keeps long keep-alive queues compact and in order', () => {
    const recorder = new EventRecorder()
    const framer = new ResponseFramer(recorder.response)
    for (let i = 0; i < 300; i++) {
      framer.expect(i % 3 === 0 ? 'HEAD' : 'GET')
      framer.push(bytes('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n'))
      if (i % 3 !== 0) framer.push(bytes('x'))
    }
    assert.equal(framer.pendingRequests, 0)
    assert.equal(recorder.events.filter((e) => e.type === 'end').length, 300)
  })

  it('end() is fine between messages and completes an until-close body', () => {
    const idle = frame('HTTP/1.1 204 No Content\r\n\r\n').framer
    idle.end()
    assert.equal(idle.state, 'closed')
    assertTunnelError(() => idle.push(bytes('x')), 'TUN_ERR_INTERNAL')
  })

  it('end() refuses a close mid-head, mid-length or mid-chunked body', () => {
    const cases: Array<[string, string]> = [
      ['HTTP/1.1 200 OK\r\nContent-', 'connection closed in the middle of a response head'],
      ['HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab', 'connection closed after 2 of 5 body bytes'],
      ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab', 'connection closed in the middle of a chunked body'],
    ]
    for (const [input, message] of cases) {
      const { framer } = frame(input)
      assertTunnelError(() => framer.end(), BAD_RESPONSE, message)
      assert.equal(framer.state, 'dead')
    }
  })

  it('is dead after an error', () => {
    const { framer } = frame('HTTP/1.1 200 OK\r\n\r\n')
    const recorder = new EventRecorder()
    const broken = new ResponseFramer(recorder.response)
    const err = assertTunnelError(() => broken.push(bytes('HTTP/1.1 200 OK\n\n')), BAD_RESPONSE, 'bare LF in status line')
    assert.throws(() => broken.push(bytes('HTTP/1.1 200 OK\r\n\r\n')), (again) => again === err)
    assert.throws(() => broken.end(), (again) => again === err)
    assert.equal(framer.state, 'body')
  })

  it('refuses to be re-entered from a callback, by push() or end()', () => {
    for (const reenter of ['push', 'end'] as const) {
      const framer: ResponseFramer = new ResponseFramer({
        onHead: () => (reenter === 'push' ? framer.push(bytes('x')) : framer.end()),
        onBody() {},
        onMessageEnd() {},
        onUpgrade() {},
      })
      assertTunnelError(() => framer.push(bytes('HTTP/1.1 204 No Content\r\n\r\n')), 'TUN_ERR_INTERNAL', `ResponseFramer.${reenter}() called from inside a callback`)
    }
  })
})

describe('ResponseFramer: tolerance', () => {
  it('ignores a stray CRLF between responses', () => {
    const { events } = frame('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx\r\nHTTP/1.1 204 No Content\r\n\r\n', ['GET', 'GET'])
    assert.deepEqual(outline(events), [200, { body: 'x' }, 'end', 204, 'end'])
  })
})

describe('ResponseFramer: the raw head handed to onHead', () => {
  const stream =
    '\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc' +
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nX-T: 1\r\n\r\n' +
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\nraw bytes'

  for (const [name, parts] of [
    ['whole', [bytes(stream)]],
    ['byte by byte', oneByteChunks(bytes(stream))],
  ] as const) {
    it(`heads, bodies and what follows a 101 are the stream itself, less the empty lines before a status line (${name})`, () => {
      const recorder = new EventRecorder()
      const framer = new ResponseFramer(recorder.response)
      for (const m of ['POST', 'GET', 'GET']) framer.expect(m)
      for (const part of parts) {
        if (framer.state === 'upgraded') break
        framer.push(part)
      }
      const relayed = Buffer.concat(recorder.relayed).toString('latin1')
      // Byte by byte, the bytes after the 101 arrive as pushes the framer no longer takes.
      assert.equal(relayed, name === 'whole' ? stream.slice(2) : stream.slice(2, -'raw bytes'.length))
    })
  }
})


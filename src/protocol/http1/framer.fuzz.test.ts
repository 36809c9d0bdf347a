import assert from 'node:assert/strict'
import { describe, it, test } from 'node:test'
import fc from 'fast-check'
import { TunnelError } from '../../errors/index.ts'
import { cutsOf, fuzzSeed, outcome } from '../../testing/fuzz.ts'
import { SeededRandom } from '../../testing/seeded-random.ts'
import type { BodyFraming } from './body-framing.ts'
import { RequestFramer } from './request-framer.ts'
import { ResponseFramer } from './response-framer.ts'
import { EventRecorder, oneByteChunks, splitAt } from '../../testing/http1/event-recorder.ts'
import { REQUEST_FRAMER_CODES, RESPONSE_FRAMER_CODES } from '../../testing/http1/framer-codes.ts'
import { generateRequestStream, generateResponseStream } from '../../testing/http1/generate-message-streams.ts'

// Property-based fuzzing (fast-check) of the hand-written HTTP/1 framers, the parsers most exposed
// to strangers: the ingress runs RequestFramer on every caller's bytes and ResponseFramer on every
// upstream's. Three properties, thousands of cases each:
//   1. a valid request, described by a model and serialised here, is reported exactly as the
//      model says, however the bytes are chunked;
//   2. any bytes at all (HTTP-shaped or not) give either events or a TunnelError of the HTTP
//      family with a clear message, never another exception, and the same outcome whole or
//      chunked; after a refusal every later push refuses the same way;
//   3. the same for the response framer.
// FUZZ_SEED=<n> explores another sequence; fast-check prints the seed and the shrunk input.

const seed = fuzzSeed(0x0f7a3e)
const RUNS = 3000

const REQUEST_CODES = REQUEST_FRAMER_CODES
const RESPONSE_CODES = RESPONSE_FRAMER_CODES

// ── a model of valid requests ───────────────────────────────────────────────────────────────────

const TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
const token = (min: number, max: number): fc.Arbitrary<string> => fc.string({ unit: fc.constantFrom(...TCHAR), minLength: min, maxLength: max })
const visible = fc.constantFrom(...Array.from({ length: 0x7f - 0x21 }, (_, i) => String.fromCharCode(0x21 + i)), '\xe9', '\xff')
/** A field value as the framer reports it: no surrounding whitespace, inner spaces and tabs kept. */
const fieldValue = fc
  .array(fc.oneof({ weight: 6, arbitrary: visible }, { weight: 1, arbitrary: fc.constantFrom(' ', '\t') }), { maxLength: 30 })
  .map((cs) => cs.join('').replace(/^[ \t]+|[ \t]+$/g, ''))
const ows = fc.constantFrom('', '', ' ', '\t', ' \t ')
const pathSegment = fc.string({ unit: fc.constantFrom(...'abcXYZ019-._~%!$&\'()*+,;=:@'), maxLength: 12 })

interface ModelRequest {
  method: string
  target: string
  host: string
  /** extra fields, names all x- so none has a meaning for framing */
  fields: Array<[string, string]>
  body: { kind: 'none' } | { kind: 'length'; bytes: Buffer } | { kind: 'chunked'; chunks: Buffer[]; extensions: string[]; trailers: Array<[string, string]>; upper: boolean }
  /** how each field line is padded around its value */
  pad: [string, string]
}

const modelRequest: fc.Arbitrary<ModelRequest> = fc.record({
  method: fc.oneof(fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'), token(1, 12)),
  target: fc.array(pathSegment, { maxLength: 5 }).map((s) => '/' + s.join('/')),
  host: fc.constantFrom('t1.localhost', 'a.example:8080', 'localhost', '[::1]:80', '127.0.0.1'),
  fields: fc.array(fc.tuple(token(1, 16).map((n) => `x-${n}`), fieldValue), { maxLength: 8 }),
  body: fc.oneof(
    fc.constant({ kind: 'none' as const }),
    fc.uint8Array({ maxLength: 300 }).map((b) => ({ kind: 'length' as const, bytes: Buffer.from(b) })),
    fc.record({
      kind: fc.constant('chunked' as const),
      chunks: fc.array(fc.uint8Array({ minLength: 1, maxLength: 80 }).map((b) => Buffer.from(b)), { maxLength: 4 }),
      extensions: fc.array(fc.constantFrom('', ';a=b', ';x', ';name="v"'), { minLength: 5, maxLength: 5 }),
      trailers: fc.array(fc.tuple(token(1, 10).map((n) => `x-${n}`), fieldValue), { maxLength: 2 }),
      upper: fc.boolean(),
    }),
  ),
  pad: fc.tuple(ows, ows),
})

function serialise(m: ModelRequest): { bytes: Buffer; body: Buffer; framing: BodyFraming } {
  const [before, after] = m.pad
  const lines = [`${m.method} ${m.target} HTTP/1.1`, `Host:${before}${m.host}${after}`]
  for (const [n, v] of m.fields) lines.push(`${n}:${before}${v}${after}`)
  let body: Buffer = Buffer.alloc(0)
  let framing: BodyFraming = { kind: 'none' }
  if (m.body.kind === 'length') {
    lines.push(`Content-Length: ${m.body.bytes.length}`)
    body = m.body.bytes
    framing = { kind: 'length', length: body.length }
  } else if (m.body.kind === 'chunked') {
    lines.push('Transfer-Encoding: chunked')
    const b = m.body
    const parts: Buffer[] = []
    b.chunks.forEach((c, i) => {
      const size = c.length.toString(16)
      parts.push(Buffer.from(`${b.upper ? size.toUpperCase() : size}${b.extensions[i] ?? ''}\r\n`, 'latin1'), c, Buffer.from('\r\n'))
    })
    parts.push(Buffer.from(`0${b.extensions[4] ?? ''}\r\n${b.trailers.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`, 'latin1'))
    body = Buffer.concat(parts)
    framing = { kind: 'chunked' }
  }
  const head = Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1')
  return { bytes: Buffer.concat([head, body]), body, framing }
}

test('valid requests are reported as their model says, however the bytes are chunked', () => {
  const streams = fc.array(modelRequest, { minLength: 1, maxLength: 3 }).chain((models) => {
    const serialised = models.map(serialise)
    const bytes = Buffer.concat(serialised.map((s) => s.bytes))
    return fc.tuple(fc.constant(models), fc.constant(serialised), fc.constant(bytes), cutsOf(bytes.length))
  })
  fc.assert(
    fc.property(streams, ([models, serialised, bytes, cuts]) => {
      const recorder = new EventRecorder()
      const framer = new RequestFramer(recorder.request)
      for (const part of splitAt(bytes, cuts.slice(0, -1))) framer.push(part)
      const heads = recorder.heads<import('./request-head.ts').RequestHead>()
      assert.equal(heads.length, models.length)
      heads.forEach((h, i) => {
        const m = models[i]!
        assert.equal(h.method, m.method)
        assert.equal(h.target, m.target)
        assert.equal(h.versionMinor, 1)
        assert.equal(h.host, m.host)
        assert.deepEqual(h.body, serialised[i]!.framing)
        assert.deepEqual(
          h.headers.filter(([n]) => n.startsWith('x-')),
          m.fields,
        )
        assert.equal(h.keepAlive, true)
        assert.equal(h.upgrade, false)
      })
      const bodies = recorder.events.flatMap((e) => (e.type === 'body' ? [e.bytes.toString('latin1')] : []))
      assert.deepEqual(bodies, serialised.filter((s) => s.body.length > 0).map((s) => s.body.toString('latin1')))
      assert.equal(recorder.events.filter((e) => e.type === 'end').length, models.length)
      assert.equal(framer.state, 'head')
    }),
    { seed, numRuns: RUNS },
  )
})

test('valid response heads are reported as written: status, reason and every field, read from the head when asked', () => {
  const reasonChar = fc.oneof({ weight: 6, arbitrary: visible }, { weight: 1, arbitrary: fc.constantFrom(' ', '\t') })
  const model = fc.record({
    status: fc.integer({ min: 200, max: 599 }).filter((c) => c !== 204 && c !== 304),
    reason: fc.option(fc.array(reasonChar, { maxLength: 20 }).map((cs) => cs.join('')), { nil: undefined }),
    // names of any case and meaning, framing ones included: the list is every field line in order
    fields: fc.array(fc.tuple(fc.oneof(token(1, 16), fc.constantFrom('Connection', 'content-type', 'Upgrade', 'Expect', 'HOST', 'Date')), fieldValue), { maxLength: 8 }),
    pads: fc.array(fc.tuple(ows, ows), { minLength: 8, maxLength: 8 }),
    bodyBytes: fc.nat({ max: 40 }),
  })
  fc.assert(
    fc.property(model, (m) => {
      const statusLine = m.reason === undefined ? `HTTP/1.1 ${m.status}` : `HTTP/1.1 ${m.status} ${m.reason}`
      const lines = [statusLine, ...m.fields.map(([n, v], i) => `${n}:${m.pads[i]![0]}${v}${m.pads[i]![1]}`), `Content-Length: ${m.bodyBytes}`]
      const bytes = Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'), Buffer.alloc(m.bodyBytes, 0x61)])
      const recorder = new EventRecorder()
      const framer = new ResponseFramer(recorder.response)
      framer.expect('GET')
      framer.push(bytes)
      const [head] = recorder.heads<import('./response-head.ts').ResponseHead>()
      assert.equal(head!.statusCode, m.status)
      assert.equal(head!.reason, m.reason ?? '')
      assert.deepEqual(head!.headers, [...m.fields, ['Content-Length', String(m.bodyBytes)]])
      assert.deepEqual(head!.body, { kind: 'length', length: m.bodyBytes })
      assert.equal(recorder.bodyBytes().length, m.bodyBytes)
    }),
    { seed, numRuns: RUNS },
  )
})

test('pushed from a read buffer that is overwritten after each push, bodies and bytes held for an upgrade come out intact', () => {
  // What the ingress does with a socket read into one reused buffer (push(chunk, true)).
  const streams = fc
    .tuple(fc.array(modelRequest, { maxLength: 2 }), fc.uint8Array({ maxLength: 300 }), fc.boolean())
    .chain(([models, after, accept]) => {
      const serialised = models.map(serialise)
      const upgrade = Buffer.from('GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n', 'latin1')
      // Declined, the bytes after the upgrade request are requests again: a valid one then.
      const tail = accept ? Buffer.from(after) : Buffer.from('GET /next HTTP/1.1\r\nHost: a\r\n\r\n', 'latin1')
      const bytes = Buffer.concat([...serialised.map((m) => m.bytes), upgrade, tail])
      return fc.tuple(fc.constant(serialised), fc.constant(tail), fc.constant(accept), fc.constant(bytes), cutsOf(bytes.length))
    })
  fc.assert(
    fc.property(streams, ([serialised, tail, accept, bytes, cuts]) => {
      const bodies: Buffer[] = []
      const targets: string[] = []
      const framer = new RequestFramer({
        onHead: (h) => targets.push(h.target),
        onBody: (chunk) => bodies.push(Buffer.from(chunk)),
        onMessageEnd() {},
      })
      const shared = Buffer.alloc(bytes.length)
      for (const part of splitAt(bytes, cuts.slice(0, -1))) {
        if (framer.state === 'upgraded') break
        const n = part.copy(shared)
        framer.push(shared.subarray(0, n), true)
        shared.fill(0xee)
      }
      assert.equal(framer.state, 'awaiting-upgrade')
      assert.deepEqual(Buffer.concat(bodies), Buffer.concat(serialised.map((m) => m.body)))
      if (accept) assert.deepEqual(framer.upgradeAccepted(), tail)
      else {
        framer.upgradeDeclined()
        assert.equal(targets.at(-1), '/next')
      }
    }),
    { seed, numRuns: RUNS },
  )
})

// ── anything at all ─────────────────────────────────────────────────────────────────────────────

/** Pieces of HTTP that, shuffled, reach the framer's corner cases far more often than random bytes. */
const HTTP_PIECES = [
  'GET ', 'POST ', 'PRI ', 'CONNECT ', '/ ', '/a?b ', '* ', 'http://x/ ', 'HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/1.1 ', 'HTTP/1.1 200 OK', 'HTTP/1.1 101 Switching Protocols', 'HTTP/1.1 100 Continue', 'HTTP/1.1 204 No Content', 'HTTP/1.1 304 x',
  '\r\n', '\r\n', '\r\n', '\n', '\r', ' ', '\t', ':', ',', ';', '"', '\x00', '\x7f', '\xff',
  'Host: a', 'Host: ', 'host:b', 'Content-Length: ', 'Content-Length: 0', 'Content-Length: 5', 'content-length:3', 'Transfer-Encoding: chunked', 'Transfer-Encoding: gzip, chunked', 'transfer-encoding:chunked',
  'Connection: close', 'Connection: upgrade', 'Connection: keep-alive, content-length', 'Upgrade: websocket', 'Expect: 100-continue',
  '0', '1', '5', 'a', 'F', 'ffffffffffffffffff', 'hello', '0\r\n\r\n', '5\r\nhello\r\n', ';ext=1', 'X-A: 1',
]
const httpish = fc.oneof(
  { weight: 4, arbitrary: fc.array(fc.constantFrom(...HTTP_PIECES), { maxLength: 40 }).map((ps) => Buffer.from(ps.join(''), 'latin1')) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)) },
)
const withCuts = httpish.chain((bytes) => fc.tuple(fc.constant(bytes), cutsOf(bytes.length)))

/** Events, or the refusal's code; a refusal must stick: the next push rethrows it. */
function feedRequests(parts: readonly Buffer[]): { events: unknown[]; error?: string } {
  const recorder = new EventRecorder()
  const framer = new RequestFramer(recorder.request, { maxHeadBytes: 512, maxStartLineBytes: 128, maxHeaderCount: 12 })
  for (const part of parts) {
    if (framer.state === 'awaiting-upgrade' || framer.state === 'upgraded') break
    const r = outcome(() => framer.push(part), REQUEST_CODES)
    if ('error' in r) {
      assert.equal(framer.state, 'dead')
      const again = outcome(() => framer.push(Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\n')), REQUEST_CODES)
      assert.ok('error' in again && again.error.code === r.error.code, 'a dead framer refuses every later push the same way')
      return { events: recorder.normalized(), error: r.error.code }
    }
  }
  return { events: recorder.normalized() }
}

test('any bytes: events or a clear HTTP refusal, never a crash, and the same whole or chunked', () => {
  fc.assert(
    fc.property(withCuts, ([bytes, cuts]) => {
      const whole = feedRequests([bytes])
      const chunked = feedRequests(splitAt(bytes, cuts.slice(0, -1)))
      assert.deepEqual(chunked, whole)
    }),
    { seed, numRuns: RUNS },
  )
})

function feedResponses(parts: readonly Buffer[], methods: readonly string[], close: boolean): { events: unknown[]; error?: string; relayed?: string } {
  const recorder = new EventRecorder()
  const framer = new ResponseFramer(recorder.response, { maxHeadBytes: 512, maxStartLineBytes: 128, maxHeaderCount: 12 })
  for (const m of methods) framer.expect(m)
  for (const part of parts) {
    if (framer.state === 'upgraded') break
    const r = outcome(() => framer.push(part), RESPONSE_CODES)
    if ('error' in r) return { events: recorder.normalized().filter((e) => typeof e !== 'object' || e === null || !('upgrade' in e)), error: r.error.code }
  }
  if (close && framer.state !== 'upgraded') {
    const r = outcome(() => framer.end(), RESPONSE_CODES)
    if ('error' in r) return { events: recorder.normalized(), error: r.error.code }
  }
  // What follows a 101 is relayed raw, so only whether it came matters, not how it was cut.
  const upgraded = framer.state === 'upgraded'
  return {
    events: recorder.normalized().map((e) => (typeof e === 'object' && e !== null && 'upgrade' in e ? 'upgrade' : e)),
    // A relay passes on exactly the heads and bodies framed, however the bytes were cut.
    ...(upgraded ? {} : { relayed: Buffer.concat(recorder.relayed).toString('latin1') }),
  }
}

test('response framer, any bytes: events or TUN_ERR_UPSTREAM_BAD_RESPONSE, never a crash, the same whole or chunked', () => {
  const methods = fc.array(fc.constantFrom('GET', 'HEAD', 'POST', 'CONNECT'), { minLength: 1, maxLength: 4 })
  fc.assert(
    fc.property(withCuts, methods, fc.boolean(), ([bytes, cuts], ms, close) => {
      const whole = feedResponses([bytes], ms, close)
      const chunked = feedResponses(splitAt(bytes, cuts.slice(0, -1)), ms, close)
      assert.deepEqual(chunked, whole)
    }),
    { seed, numRuns: RUNS },
  )
})

// ── seeded mutations ─────────────────────────────────────────────────────────────────────────────
// Mutated valid messages: the framer may accept or refuse them, but it must refuse with a
// TunnelError of the expected family, and body bytes must always be slices of what was fed so far.

const CASES_PER_SIDE = 10_000
const SPECIAL_BYTES = [0x0d, 0x0a, 0x20, 0x3a, 0x09, 0x00, 0x30, 0x3b, 0x22, 0x2c, 0x61, 0xff, 0x7f, 0x2d, 0x2b]
const REQUEST_CODE_SET = new Set<string>(REQUEST_FRAMER_CODES)

function mutate(rng: SeededRandom, original: Buffer): Buffer {
  let bytes = Buffer.from(original)
  for (let n = rng.int(1, 3); n > 0; n--) {
    // Heads are where the interesting decisions are, so half the mutations land near the start.
    const limit = rng.chance(0.5) ? Math.min(bytes.length, 200) : bytes.length
    const at = rng.int(0, Math.max(0, limit - 1))
    switch (rng.int(0, 6)) {
      case 0:
        if (bytes.length > 0) bytes[at] = bytes[at]! ^ (1 << rng.int(0, 7))
        break
      case 1:
        bytes = Buffer.concat([bytes.subarray(0, at), Buffer.of(rng.pick(SPECIAL_BYTES)), bytes.subarray(at)])
        break
      case 2:
        bytes = Buffer.concat([bytes.subarray(0, at), rng.bytes(rng.int(1, 4)), bytes.subarray(at)])
        break
      case 3:
        bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + rng.int(1, 4))])
        break
      case 4:
        bytes = bytes.subarray(0, at)
        break
      case 5:
        if (bytes.length > 0) bytes[at] = rng.pick(SPECIAL_BYTES)
        break
      case 6: {
        const from = rng.int(0, bytes.length)
        const piece = bytes.subarray(from, from + rng.int(1, 40))
        bytes = Buffer.concat([bytes.subarray(0, at), piece, bytes.subarray(at)])
        break
      }
    }
  }
  // A private ArrayBuffer, so "inside the fed prefix" can be checked by identity and offset.
  const own = Buffer.from(new ArrayBuffer(bytes.length))
  bytes.copy(own)
  return own
}

function pieces(rng: SeededRandom, bytes: Buffer): Buffer[] {
  if (rng.chance(0.1)) return oneByteChunks(bytes)
  return splitAt(bytes, rng.cuts(bytes.length, rng.int(0, 6)))
}

/** Asserts a body slice lies inside input[0, fed) of the one buffer all pieces come from. */
function checkSlice(chunk: Buffer, input: Buffer, fed: number, context: string): void {
  assert.ok(chunk.length > 0, `${context}: empty onBody chunk`)
  assert.equal(chunk.buffer, input.buffer, `${context}: onBody chunk is not a slice of the input`)
  assert.ok(chunk.byteOffset >= input.byteOffset && chunk.byteOffset + chunk.length <= input.byteOffset + fed, `${context}: onBody beyond the bytes fed`)
}

function checkFailure(err: unknown, codes: ReadonlySet<string>, context: string): void {
  if (!(err instanceof TunnelError)) throw new assert.AssertionError({ message: `${context}: threw a non-TunnelError: ${String(err)}` })
  assert.ok(codes.has(err.code), `${context}: unexpected code ${err.code} (${err.message})`)
}

describe('framer fuzz', () => {
  it('request framer: mutated input succeeds or throws a request TunnelError', () => {
    for (let seed = 1; seed <= CASES_PER_SIDE; seed++) {
      const rng = new SeededRandom(seed ^ 0x5bd1e995)
      const input = mutate(rng, generateRequestStream(rng, 3).bytes)
      const context = `request seed ${seed}`
      let fed = 0
      let emitted = 0
      const framer = new RequestFramer({
        onHead() {},
        onBody(chunk) {
          checkSlice(chunk, input, fed, context)
          emitted += chunk.length
        },
        onMessageEnd() {},
      })
      try {
        for (const piece of pieces(rng, input)) {
          fed += piece.length
          framer.push(piece)
          if (framer.state === 'awaiting-upgrade') {
            if (rng.chance(0.5)) {
              framer.upgradeAccepted()
              break
            }
            framer.upgradeDeclined()
          }
        }
      } catch (err) {
        checkFailure(err, REQUEST_CODE_SET, context)
        assert.equal(framer.state, 'dead', context)
        assert.throws(() => framer.push(Buffer.from('GET / HTTP/1.1\r\n')), (again) => again === err, `${context}: dead framer must keep failing`)
      }
      assert.ok(emitted <= fed, `${context}: emitted ${emitted} body bytes of ${fed} fed`)
    }
  })

  it('response framer: mutated input succeeds or throws TUN_ERR_UPSTREAM_BAD_RESPONSE', () => {
    const codes = new Set(['TUN_ERR_UPSTREAM_BAD_RESPONSE'])
    for (let seed = 1; seed <= CASES_PER_SIDE; seed++) {
      const rng = new SeededRandom(seed ^ 0x1b873593)
      const stream = generateResponseStream(rng, 3)
      const input = mutate(rng, stream.bytes)
      const context = `response seed ${seed}`
      let fed = 0
      let emitted = 0
      const framer = new ResponseFramer({
        onHead() {},
        onBody(chunk) {
          checkSlice(chunk, input, fed, context)
          emitted += chunk.length
        },
        onMessageEnd() {},
        onUpgrade(rest) {
          if (rest.length > 0) checkSlice(rest, input, fed, context)
        },
      })
      for (const method of stream.methods) framer.expect(rng.chance(0.9) ? method : rng.pick(['HEAD', 'GET', 'CONNECT']))
      try {
        for (const piece of pieces(rng, input)) {
          if (framer.state === 'upgraded') break
          fed += piece.length
          framer.push(piece)
        }
        if (framer.state !== 'upgraded' && rng.chance(0.8)) framer.end()
      } catch (err) {
        checkFailure(err, codes, context)
        assert.equal(framer.state, 'dead', context)
      }
      assert.ok(emitted <= fed, `${context}: emitted ${emitted} body bytes of ${fed} fed`)
    }
  })
})

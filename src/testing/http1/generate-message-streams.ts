import type { BodyFraming } from '../../protocol/http1/body-framing.ts'
import type { RequestHead } from '../../protocol/http1/request-head.ts'
import type { ResponseHead } from '../../protocol/http1/response-head.ts'
import type { SeededRandom } from '../seeded-random.ts'

// Valid-message generator for property and fuzz tests. It knows what it wrote, so it states the
// expected heads independently of the parser instead of asking the parser what it thinks.

const TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
const PATH_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~%!$&'()*+,;=:@/"
const VALUE_CHARS = (() => {
  let chars = ''
  for (let c = 0x21; c < 0x7f; c++) chars += String.fromCharCode(c)
  for (let c = 0x80; c <= 0xff; c += 7) chars += String.fromCharCode(c)
  return chars
})()
const METHODS = ['GET', 'GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'PROPFIND', 'M-SEARCH', 'x_custom']
const OWS = ['', '', '', ' ', '\t', '  ', ' \t ']

export interface GeneratedRequest {
  bytes: Buffer
  /** what the framer decides, and the field list (a parsed head's text is not predicted) */
  expected: Omit<RequestHead, 'text' | 'hasFieldIn'>
  /** The body exactly as sent, chunked framing included. */
  body: Buffer
}

export interface GeneratedRequestStream {
  bytes: Buffer
  messages: GeneratedRequest[]
  /** Raw bytes sent after a final upgrade request (what upgradeAccepted() must return). */
  afterUpgrade: Buffer | undefined
}

export interface GeneratedResponse {
  bytes: Buffer
  expected: ResponseHead
  body: Buffer
  interim: boolean
}

export interface GeneratedResponseStream {
  bytes: Buffer
  /** Methods of the requests answered, in order, for ResponseFramer.expect(). */
  methods: string[]
  messages: GeneratedResponse[]
  /** Bytes after a final 101 head. */
  afterUpgrade: Buffer | undefined
  /** The last response is delimited by the connection closing: the feeder must call end(). */
  closeDelimited: boolean
}

export function generateRequestStream(rng: SeededRandom, maxMessages = 4): GeneratedRequestStream {
  const messages: GeneratedRequest[] = []
  const count = rng.int(1, maxMessages)
  let afterUpgrade: Buffer | undefined
  for (let i = 0; i < count; i++) {
    const last = i === count - 1
    const message = generateRequest(rng, last && rng.chance(0.25))
    messages.push(message)
    if (message.expected.upgrade) afterUpgrade = rng.chance(0.7) ? rng.bytes(rng.int(1, 200)) : Buffer.alloc(0)
  }
  const parts = messages.map((m) => m.bytes)
  if (afterUpgrade !== undefined) parts.push(afterUpgrade)
  return { bytes: Buffer.concat(parts), messages, afterUpgrade }
}

export function generateRequest(rng: SeededRandom, upgrade: boolean): GeneratedRequest {
  const versionMinor: 0 | 1 = upgrade || rng.chance(0.85) ? 1 : 0
  const method = upgrade ? 'GET' : rng.pick(METHODS)
  const target = generateTarget(rng, method)
  const lines: Array<[name: string, raw: string, value: string]> = []
  let host: string | undefined
  if (versionMinor === 1 || rng.chance(0.5)) {
    host = rng.pick(['app.example.com', 'app.example.com:8443', '127.0.0.1:3000', '[::1]:80', 'xn--bcher-kva.example'])
    lines.push([rng.pick(['Host', 'host', 'HOST']), ...spaced(rng, host)])
  }
  const bodyKind = rng.pick(versionMinor === 1 ? ['none', 'none', 'length', 'chunked'] as const : ['none', 'length'] as const)
  let keepAlive = versionMinor === 1
  let expectContinue = false
  if (upgrade) {
    lines.push(['Connection', ...spaced(rng, rng.pick(['Upgrade', 'upgrade', 'keep-alive, Upgrade']))])
    lines.push(['Upgrade', ...spaced(rng, 'websocket')])
  } else if (rng.chance(0.5)) {
    const [value, close, keep] = rng.pick([
      ['keep-alive', false, true],
      ['Keep-Alive', false, true],
      ['close', true, false],
      ['Close, foo', true, false],
      ['TE, keep-alive', false, true],
      ['foo', false, false],
    ] as const)
    lines.push([rng.pick(['Connection', 'connection']), ...spaced(rng, value)])
    keepAlive = !close && (versionMinor === 1 || keep)
  }
  let body: Buffer = Buffer.alloc(0)
  let framing: BodyFraming = { kind: 'none' }
  if (bodyKind === 'length') {
    body = generateOpaqueBytes(rng, rng.int(0, 400))
    framing = { kind: 'length', length: body.length }
    lines.push([rng.pick(['Content-Length', 'content-length']), ...spaced(rng, String(body.length))])
  } else if (bodyKind === 'chunked') {
    body = generateChunkedBody(rng)
    framing = { kind: 'chunked' }
    lines.push([rng.pick(['Transfer-Encoding', 'transfer-encoding']), ...spaced(rng, rng.pick(['chunked', 'Chunked', 'CHUNKED']))])
  }
  if (bodyKind !== 'none' && versionMinor === 1 && rng.chance(0.2)) {
    lines.push(['Expect', ...spaced(rng, rng.pick(['100-continue', '100-Continue']))])
    expectContinue = true
  }
  for (let n = rng.int(0, 10); n > 0; n--) {
    lines.splice(rng.int(0, lines.length), 0, generateExtensionField(rng))
  }
  let head = rng.chance(0.1) ? '\r\n'.repeat(rng.int(1, 4)) : ''
  head += `${method} ${target} HTTP/1.${versionMinor}\r\n`
  for (const [name, raw] of lines) head += `${name}:${raw}\r\n`
  head += '\r\n'
  const expected: Omit<RequestHead, 'text' | 'hasFieldIn'> = {
    method,
    target,
    versionMinor,
    headers: lines.map(([name, , value]) => [name, value]),
    body: framing,
    keepAlive,
    upgrade,
    expectContinue,
    host,
  }
  return { bytes: Buffer.concat([Buffer.from(head, 'latin1'), body]), expected, body }
}

export function generateResponseStream(rng: SeededRandom, maxMessages = 4): GeneratedResponseStream {
  const messages: GeneratedResponse[] = []
  const methods: string[] = []
  const count = rng.int(1, maxMessages)
  let afterUpgrade: Buffer | undefined
  let closeDelimited = false
  for (let i = 0; i < count; i++) {
    const last = i === count - 1
    while (rng.chance(0.2)) messages.push(generateInterimResponse(rng))
    if (last && rng.chance(0.15)) {
      methods.push('GET')
      messages.push(generateSwitchingProtocols(rng))
      afterUpgrade = rng.chance(0.7) ? rng.bytes(rng.int(1, 200)) : Buffer.alloc(0)
      break
    }
    const method = rng.pick(['GET', 'GET', 'POST', 'HEAD', 'PUT'])
    methods.push(method)
    const response = generateFinalResponse(rng, method, last)
    messages.push(response)
    if (response.expected.body.kind === 'until-close') closeDelimited = true
  }
  const parts = messages.map((m) => m.bytes)
  if (afterUpgrade !== undefined) parts.push(afterUpgrade)
  return { bytes: Buffer.concat(parts), methods, messages, afterUpgrade, closeDelimited }
}

function generateFinalResponse(rng: SeededRandom, method: string, mayCloseDelimit: boolean): GeneratedResponse {
  const versionMinor: 0 | 1 = rng.chance(0.85) ? 1 : 0
  const statusCode = rng.pick([200, 200, 201, 204, 206, 301, 304, 404, 500, 503, 299])
  const lines: Array<[name: string, raw: string, value: string]> = []
  let keepAlive = versionMinor === 1
  if (rng.chance(0.4)) {
    const [value, close, keep] = rng.pick([
      ['keep-alive', false, true],
      ['close', true, false],
      ['Keep-Alive', false, true],
    ] as const)
    lines.push(['Connection', ...spaced(rng, value)])
    keepAlive = !close && (versionMinor === 1 || keep)
  }
  let body: Buffer = Buffer.alloc(0)
  let framing: BodyFraming = { kind: 'none' }
  if (method === 'HEAD' || statusCode === 204 || statusCode === 304) {
    // Framing fields of a bodiless response describe a body that is not sent.
    if (rng.chance(0.5)) lines.push(['Content-Length', ...spaced(rng, String(rng.int(0, 99999)))])
    else if (versionMinor === 1 && rng.chance(0.3)) lines.push(['Transfer-Encoding', ...spaced(rng, 'chunked')])
  } else {
    const kinds = ['length', 'length'] as Array<'length' | 'chunked' | 'close' | 'gzip-close'>
    if (versionMinor === 1) kinds.push('chunked', 'chunked')
    if (mayCloseDelimit) kinds.push('close', versionMinor === 1 ? 'gzip-close' : 'close')
    const kind = rng.pick(kinds)
    if (kind === 'length') {
      body = generateOpaqueBytes(rng, rng.int(0, 400))
      framing = { kind: 'length', length: body.length }
      const value = rng.chance(0.1) ? `${body.length}, ${body.length}` : String(body.length)
      lines.push(['Content-Length', ...spaced(rng, value)])
      if (rng.chance(0.1)) lines.push(['content-length', ...spaced(rng, String(body.length))])
    } else if (kind === 'chunked') {
      body = generateChunkedBody(rng)
      framing = { kind: 'chunked' }
      lines.push(['Transfer-Encoding', ...spaced(rng, rng.pick(['chunked', 'gzip, chunked', 'Chunked']))])
    } else {
      body = generateOpaqueBytes(rng, rng.int(0, 400))
      framing = { kind: 'until-close' }
      if (kind === 'gzip-close') lines.push(['Transfer-Encoding', ...spaced(rng, rng.pick(['gzip', 'chunked, gzip']))])
      keepAlive = false
    }
  }
  for (let n = rng.int(0, 8); n > 0; n--) lines.splice(rng.int(0, lines.length), 0, generateExtensionField(rng))
  const [statusLine, reason] = generateStatusLine(rng, versionMinor, statusCode)
  let head = statusLine
  for (const [name, raw] of lines) head += `${name}:${raw}\r\n`
  head += '\r\n'
  const expected: ResponseHead = {
    statusCode,
    reason,
    versionMinor,
    headers: lines.map(([name, , value]) => [name, value]),
    body: framing,
    keepAlive,
  }
  return { bytes: Buffer.concat([Buffer.from(head, 'latin1'), body]), expected, body, interim: false }
}

function generateInterimResponse(rng: SeededRandom): GeneratedResponse {
  const statusCode = rng.pick([100, 102, 103])
  const lines: Array<[name: string, raw: string, value: string]> = []
  if (statusCode === 103) lines.push(['Link', ...spaced(rng, '</style.css>; rel=preload; as=style')])
  const [statusLine, reason] = generateStatusLine(rng, 1, statusCode)
  let head = statusLine
  for (const [name, raw] of lines) head += `${name}:${raw}\r\n`
  head += '\r\n'
  const expected: ResponseHead = {
    statusCode,
    reason,
    versionMinor: 1,
    headers: lines.map(([name, , value]) => [name, value]),
    body: { kind: 'none' },
    keepAlive: true,
  }
  return { bytes: Buffer.from(head, 'latin1'), expected, body: Buffer.alloc(0), interim: true }
}

function generateSwitchingProtocols(rng: SeededRandom): GeneratedResponse {
  const lines: Array<[name: string, raw: string, value: string]> = [
    ['Upgrade', ...spaced(rng, 'websocket')],
    ['Connection', ...spaced(rng, 'Upgrade')],
    ['Sec-WebSocket-Accept', ...spaced(rng, 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=')],
  ]
  const [statusLine, reason] = generateStatusLine(rng, 1, 101)
  let head = statusLine
  for (const [name, raw] of lines) head += `${name}:${raw}\r\n`
  head += '\r\n'
  const expected: ResponseHead = {
    statusCode: 101,
    reason,
    versionMinor: 1,
    headers: lines.map(([name, , value]) => [name, value]),
    body: { kind: 'none' },
    keepAlive: false,
  }
  return { bytes: Buffer.from(head, 'latin1'), expected, body: Buffer.alloc(0), interim: false }
}

function generateStatusLine(rng: SeededRandom, versionMinor: 0 | 1, statusCode: number): [line: string, reason: string] {
  const form = rng.int(0, 9)
  if (form === 0) return [`HTTP/1.${versionMinor} ${statusCode}\r\n`, '']
  const reason = form === 1 ? '' : rng.pick(['OK', 'Not Found', 'Some  reason\twith spaces', 'caf\xe9', 'Whatever '])
  return [`HTTP/1.${versionMinor} ${statusCode} ${reason}\r\n`, reason]
}

function generateTarget(rng: SeededRandom, method: string): string {
  const roll = rng.next()
  if (method === 'OPTIONS' && roll < 0.3) return '*'
  const path = `/${rng.string(PATH_CHARS, rng.int(0, 40))}`
  const query = rng.chance(0.3) ? `?${rng.string(PATH_CHARS + '?', rng.int(0, 30))}` : ''
  if (roll > 0.9) return `http://app.example.com${path}${query}`
  return path + query
}

function generateExtensionField(rng: SeededRandom): [name: string, raw: string, value: string] {
  let name = `X-${rng.string(TOKEN_CHARS, rng.int(1, 12))}`
  if (rng.chance(0.3)) name = name.toLowerCase()
  let value = ''
  const words = rng.int(0, 4)
  for (let i = 0; i < words; i++) {
    if (i > 0) value += rng.pick([' ', '\t', '  '])
    value += rng.string(VALUE_CHARS, rng.int(1, 20))
  }
  return [name, ...spaced(rng, value)]
}

/** A value with random optional whitespace around it: [as written, as the parser must report it]. */
function spaced(rng: SeededRandom, value: string): [raw: string, value: string] {
  return [`${rng.pick(OWS)}${value}${rng.pick(OWS)}`, value]
}

/** Bytes that look like HTTP now and then, so a framer that peeks into bodies would be caught. */
function generateOpaqueBytes(rng: SeededRandom, length: number): Buffer {
  if (length > 20 && rng.chance(0.3)) {
    const decoy = Buffer.from('\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: evil\r\n\r\n', 'latin1')
    return Buffer.concat([rng.bytes(rng.int(0, 10)), decoy, rng.bytes(length)]).subarray(0, Math.max(length, decoy.length))
  }
  return rng.bytes(length)
}

function generateChunkedBody(rng: SeededRandom): Buffer {
  const parts: Buffer[] = []
  for (let n = rng.int(0, 5); n > 0; n--) {
    const data = generateOpaqueBytes(rng, rng.int(1, 300))
    parts.push(Buffer.from(`${chunkSize(rng, data.length)}${chunkExtensions(rng)}\r\n`, 'latin1'), data, Buffer.from('\r\n'))
  }
  let tail = `${chunkSize(rng, 0)}${chunkExtensions(rng)}\r\n`
  for (let n = rng.chance(0.3) ? rng.int(1, 3) : 0; n > 0; n--) {
    const [name, raw] = generateExtensionField(rng)
    tail += `${name}:${raw}\r\n`
  }
  parts.push(Buffer.from(`${tail}\r\n`, 'latin1'))
  return Buffer.concat(parts)
}

function chunkSize(rng: SeededRandom, size: number): string {
  let hex = size.toString(16)
  if (rng.chance(0.5)) hex = hex.toUpperCase()
  if (rng.chance(0.2)) hex = hex.padStart(rng.int(hex.length, 16), '0')
  return hex
}

function chunkExtensions(rng: SeededRandom): string {
  let out = ''
  for (let n = rng.chance(0.3) ? rng.int(1, 3) : 0; n > 0; n--) {
    const bws = () => rng.pick(['', '', ' ', '\t'])
    out += `${bws()};${bws()}${rng.string(TOKEN_CHARS, rng.int(1, 8))}`
    const value = rng.int(0, 2)
    if (value === 1) out += `${bws()}=${bws()}${rng.string(TOKEN_CHARS, rng.int(1, 8))}`
    if (value === 2) out += `${bws()}=${bws()}"${rng.pick(['', 'a b', 'q\\"uote', 'tab\there', 'caf\xe9'])}"`
  }
  return out
}

/** The events a framer must report for a generated stream, in EventRecorder.normalized() form. */
export function expectedEvents(stream: GeneratedRequestStream | GeneratedResponseStream): unknown[] {
  const events: unknown[] = []
  for (const message of stream.messages) {
    events.push({ head: message.expected })
    if ('interim' in message && message.interim) continue
    if (message.expected.body.kind === 'none' && 'statusCode' in message.expected && message.expected.statusCode === 101) continue
    if (message.body.length > 0) events.push({ body: message.body.toString('latin1') })
    events.push('end')
  }
  if ('methods' in stream && stream.afterUpgrade !== undefined) events.push({ upgrade: stream.afterUpgrade.toString('latin1') })
  return events
}

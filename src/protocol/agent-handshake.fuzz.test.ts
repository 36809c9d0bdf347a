import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { IncomingMessage } from 'node:http'
import { Duplex } from 'node:stream'
import fc from 'fast-check'
import { errorCatalog, type ErrorCode } from '../errors/index.ts'
import { silentLogger } from '../observability/index.ts'
import { AgentGateway } from '../server/agent-gateway/agent-gateway.ts'
import { SessionRegistry } from '../server/agent-gateway/session-registry.ts'
import {
  AGENT_CONNECT_PATH,
  AGENT_UPGRADE_TOKEN,
  agentHeaders,
  formatAgentAuthorization,
  formatWelcomeHeaders,
  wellFormed,
  parseAgentAuthorization,
  parseNodeId,
  parseWelcomeHeaders,
  type SessionWelcome,
} from './agent-handshake.ts'
import { outcome, fuzzSeed } from '../testing/fuzz.ts'

// Property-based fuzzing of everything a peer sends during the agent connect handshake: the
// Authorization and node id headers the server parses, the welcome headers the agent parses, and
// the gateway's answer to a whole connect request. Each input gives a valid result or a TunnelError
// with a stable code from the catalog and a message; never another exception.
// FUZZ_SEED=<n> explores another sequence; fast-check prints the seed of a failure.

const seed = fuzzSeed(0xa9e47)
const RUNS = 2500



// ---- generators -------------------------------------------------------------------------------

/** Any UTF-16 code unit, lone surrogates included. */
const anyCodeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c))
const anyString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 100 }),
  fc.string({ unit: anyCodeUnit, maxLength: 100 }),
  fc.string({ unit: 'binary-ascii', maxLength: 100 }),
  fc.string({ maxLength: 100 }),
)
/** What Node hands over as a header value: latin1 characters, no CR, LF or NUL. */
const headerValue = fc.string({ unit: fc.integer({ min: 1, max: 255 }).filter((c) => c !== 10 && c !== 13).map((c) => String.fromCharCode(c)), maxLength: 100 })
const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
const tunnelId = fc.stringMatching(/^[a-z][a-z0-9]{7,62}$/)
const secret = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b))
const schemeVariant = fc.oneof(
  fc.constantFrom('Tunnel', 'tunnel', 'TUNNEL', 'tUNNEL', 'Bearer', 'Basic', 'Tunne', 'Tunnels', 'Tunnel:', ''),
  fc.string({ unit: fc.constantFrom('t', 'T', 'u', 'U', 'n', 'N', 'e', 'E', 'l', 'L'), minLength: 5, maxLength: 7 }),
)
const separator = fc.oneof({ arbitrary: fc.constant(' '), weight: 5 }, fc.constantFrom('  ', ' \t', '\t', '', '  \u00a0', ' \u3000'))
const token = fc.oneof(
  fc.tuple(tunnelId, secret).map(([id, s]) => `${id}.${s.toString('base64url')}`),
  fc.tuple(fc.oneof(tunnelId, anyString), fc.uint8Array({ maxLength: 40 })).map(([id, s]) => `${id}.${Buffer.from(s).toString('base64url')}`),
  fc.tuple(tunnelId, secret).map(([id, s]) => `${id}.${s.toString('base64')}`),
  fc.tuple(tunnelId, fc.string({ unit: fc.constantFrom(...BASE64URL.split(''), '.', '=', '+', '/', ' ', '!'), maxLength: 60 })).map(([id, s]) => `${id}.${s}`),
  anyString,
)
const authorization = fc.oneof(
  fc.constant(undefined),
  anyString,
  headerValue,
  fc.tuple(schemeVariant, separator, token, fc.constantFrom('', ' ', '  ', '\t', '\u3000')).map(([a, b, c, d]) => a + b + c + d),
  fc.tuple(tunnelId, secret, fc.nat(), anyCodeUnit).map(([id, s, at, c]) => {
    const v = formatAgentAuthorization(id, s)
    const i = at % (v.length + 1)
    return v.slice(0, i) + c + v.slice(i + 1)
  }),
)

// ---- Authorization ----------------------------------------------------------------------------

test('Authorization: valid credentials, HANDSHAKE_BAD_REQUEST for a wrong scheme, KEY_REJECTED for bad credentials', () => {
  fc.assert(
    fc.property(authorization, (value) => {
      const out = outcome(() => parseAgentAuthorization(value), ['TUN_ERR_HANDSHAKE_BAD_REQUEST', 'TUN_ERR_KEY_REJECTED'])
      const space = value === undefined ? -1 : value.indexOf(' ')
      const schemeOk = value !== undefined && space >= 0 && /^tunnel$/i.test(value.slice(0, space))
      if ('value' in out) {
        assert.ok(schemeOk, 'accepted only with the Tunnel scheme')
        assert.match(out.value.tunnelId, /^[a-z][a-z0-9]{7,62}$/)
        assert.ok(Buffer.isBuffer(out.value.secret) && out.value.secret.length === 32)
        assert.deepEqual(parseAgentAuthorization(formatAgentAuthorization(out.value.tunnelId, out.value.secret)), out.value)
        return
      }
      if (value === undefined) assert.match(out.error.message, /missing/)
      else if (!schemeOk) {
        assert.equal(out.error.code, 'TUN_ERR_HANDSHAKE_BAD_REQUEST')
        assert.match(out.error.message, /"Tunnel" scheme/)
      } else {
        assert.equal(out.error.code, 'TUN_ERR_KEY_REJECTED')
        // The credentials never come back in the message (it is logged and sent to the peer).
        const credentials = value.slice(space + 1).trim()
        if (credentials.length >= 6) assert.ok(!out.error.message.includes(credentials), 'message must not echo the credentials')
      }
    }),
    { numRuns: RUNS, seed },
  )
})

test('Authorization: format → parse round-trips any credentials, in any scheme case and spacing', () => {
  fc.assert(
    fc.property(tunnelId, secret, fc.nat(), fc.constantFrom(' ', '  ', ' \t ', ' \u00a0'), fc.constantFrom('', ' ', '\t', '\u3000 '), (id, s, caseBits, sep, tail) => {
      const scheme = [...'Tunnel'].map((c, i) => ((caseBits >> i) & 1 ? c.toUpperCase() : c.toLowerCase())).join('')
      const value = formatAgentAuthorization(id, s).replace(/^Tunnel /, scheme + sep) + tail
      assert.deepEqual(outcome(() => parseAgentAuthorization(value), []), { value: { tunnelId: id, secret: s } })
    }),
    { numRuns: RUNS, seed },
  )
})

// ---- node id ----------------------------------------------------------------------------------

test('node id: returned unchanged when 1-64 characters of A-Z a-z 0-9 . _ -, else HANDSHAKE_BAD_REQUEST naming the header', () => {
  const nodeId = fc.oneof(
    fc.constant(undefined),
    anyString,
    headerValue,
    fc.string({ unit: fc.constantFrom(...'abzAZ09._-'.split('')), maxLength: 70 }),
    fc.stringMatching(/^[A-Za-z0-9._-]{1,64}$/),
    fc.stringMatching(/^[A-Za-z0-9._-]{1,64}$/).chain((v) => fc.tuple(fc.nat(), anyCodeUnit).map(([at, c]) => v.slice(0, at % (v.length + 1)) + c + v.slice(at % (v.length + 1)))),
  )
  fc.assert(
    fc.property(nodeId, (v) => {
      const out = outcome(() => parseNodeId(v), ['TUN_ERR_HANDSHAKE_BAD_REQUEST'])
      if (v !== undefined && /^[A-Za-z0-9._-]{1,64}$/.test(v)) assert.deepEqual(out, { value: v })
      else {
        assert.ok('error' in out, `${JSON.stringify(v)} was accepted`)
        assert.match(out.error.message, /x-apptunnel-node-id/)
      }
    }),
    { numRuns: RUNS, seed },
  )
})

// ---- welcome headers --------------------------------------------------------------------------

const TEXT_HEADERS = [agentHeaders.sessionId, agentHeaders.tunnelName, agentHeaders.orgName] as const
const INT_HEADERS = [agentHeaders.pingIntervalMs, agentHeaders.pingTimeoutMs] as const

/** The reference reading of one header, from the documented rules, or the reason it is refused. */
function expectText(raw: unknown): string | Error {
  if (typeof raw !== 'string') return new Error('did not send')
  try {
    return decodeURIComponent(raw)
  } catch {
    return new Error('invalid')
  }
}
function expectInt(raw: unknown): number | Error {
  if (typeof raw !== 'string' || !/^[0-9]{1,9}$/.test(raw)) return new Error('invalid')
  const n = Number(raw)
  return n >= 100 && n <= 600_000 ? n : new Error('invalid')
}

const pingValue = fc.oneof(
  fc.integer({ min: 100, max: 600_000 }).map(String),
  fc.integer({ min: -10, max: 1_000_000_000 }).map(String),
  fc.constantFrom('', '99', '100', '600000', '600001', '0100', '000000100', '0000000100', '1e3', '1.5', ' 1000', '1000 ', '+1000', '0x100', 'NaN', 'Infinity', '١٠٠٠'),
  anyString,
)
const textValue = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }).map(encodeURIComponent),
  fc.constantFrom('%', '%E0%A4%A', '%ZZ', '%C3', '%ED%A0%80', '%F4%90%80%80', '%00', 'a%2'),
  fc.string({ unit: fc.constantFrom('%', '2', 'F', 'E', '0', 'C', '3', 'A', 'z'), maxLength: 20 }),
  headerValue,
  anyString,
)
const headerEntry = (a: fc.Arbitrary<string>): fc.Arbitrary<string | string[] | undefined> =>
  fc.oneof({ arbitrary: a, weight: 8 }, fc.constant(undefined), fc.array(a, { maxLength: 3 }))

const welcomeHeaders = fc
  .record({
    [agentHeaders.sessionId]: headerEntry(textValue),
    [agentHeaders.tunnelName]: headerEntry(textValue),
    [agentHeaders.orgName]: headerEntry(textValue),
    [agentHeaders.pingIntervalMs]: headerEntry(pingValue),
    [agentHeaders.pingTimeoutMs]: headerEntry(pingValue),
    [agentHeaders.applicationLinkUrl]: fc.oneof(fc.constant(undefined), headerEntry(textValue)),
    other: fc.dictionary(fc.string({ maxLength: 12 }), fc.oneof(anyString, fc.array(anyString, { maxLength: 2 })), { maxKeys: 3 }),
  })
  .map(({ other, ...known }) => {
    const headers: Record<string, string | string[] | undefined> = { ...other }
    for (const [k, v] of Object.entries(known)) if (v !== undefined || k !== agentHeaders.applicationLinkUrl) headers[k] = v
    return headers
  })

test('welcome headers: a SessionWelcome read by the documented rules, or HANDSHAKE_BAD_REQUEST naming the first bad header', () => {
  fc.assert(
    fc.property(welcomeHeaders, (headers) => {
      const out = outcome(() => parseWelcomeHeaders(headers), ['TUN_ERR_HANDSHAKE_BAD_REQUEST'])
      const expected: Array<[string, string | number | Error]> = [
        ...TEXT_HEADERS.map((h): [string, string | Error] => [h, expectText(headers[h])]),
        ...INT_HEADERS.map((h): [string, number | Error] => [h, expectInt(headers[h])]),
        ...(headers[agentHeaders.applicationLinkUrl] === undefined ? [] : [[agentHeaders.applicationLinkUrl, expectText(headers[agentHeaders.applicationLinkUrl])] as [string, string | Error]]),
      ]
      const firstBad = expected.find(([, v]) => v instanceof Error)
      if (firstBad === undefined) {
        assert.ok('value' in out, `refused: ${'error' in out ? out.error.message : ''}`)
        const w: SessionWelcome = out.value
        assert.deepEqual(
          [w.sessionId, w.tunnelName, w.orgName, w.pingIntervalMs, w.pingTimeoutMs, ...(w.applicationLinkUrl === undefined ? [] : [w.applicationLinkUrl])],
          expected.map(([, v]) => v),
        )
        assert.deepEqual(Object.keys(w).sort(), ['orgName', 'pingIntervalMs', 'pingTimeoutMs', 'sessionId', 'tunnelName', ...(w.applicationLinkUrl === undefined ? [] : ['applicationLinkUrl'])].sort())
      } else {
        assert.ok('error' in out, `${firstBad[0]}=${JSON.stringify(headers[firstBad[0]])} is invalid, yet accepted`)
        assert.ok(out.error.message.includes(firstBad[0]), `message ${JSON.stringify(out.error.message)} names ${firstBad[0]}`)
        assert.ok(out.error.message.includes((firstBad[1] as Error).message), `message ${JSON.stringify(out.error.message)} says "${(firstBad[1] as Error).message}"`)
      }
    }),
    { numRuns: RUNS, seed },
  )
})

const welcome: fc.Arbitrary<SessionWelcome> = fc.record(
  {
    sessionId: fc.uuid(),
    tunnelName: fc.string({ unit: 'binary', maxLength: 60 }),
    orgName: fc.string({ unit: 'binary', maxLength: 60 }),
    pingIntervalMs: fc.integer({ min: 100, max: 600_000 }),
    pingTimeoutMs: fc.integer({ min: 100, max: 600_000 }),
    applicationLinkUrl: fc.webUrl({ withQueryParameters: true, withFragments: true }),
  },
  { requiredKeys: ['sessionId', 'tunnelName', 'orgName', 'pingIntervalMs', 'pingTimeoutMs'] },
)

test('welcome headers: format → parse round-trips any welcome, with visible-ASCII header values', () => {
  fc.assert(
    fc.property(welcome, (w) => {
      const headers = formatWelcomeHeaders(w)
      for (const v of Object.values(headers)) assert.match(v, /^[\x21-\x7e]*$/, 'header values are visible ASCII')
      assert.deepEqual(outcome(() => parseWelcomeHeaders(headers), []), { value: { ...w } })
    }),
    { numRuns: RUNS, seed },
  )
})

test('welcome headers: formatting never throws anything but a TunnelError, even for a name with a lone surrogate (sent as U+FFFD)', () => {
  fc.assert(
    fc.property(welcome, fc.string({ unit: anyCodeUnit, maxLength: 20 }), (w, name) => {
      const headers = outcome(() => formatWelcomeHeaders({ ...w, tunnelName: name }), ['TUN_ERR_INTERNAL', 'TUN_ERR_TUNNEL_NAME_INVALID'])
      if ('value' in headers) assert.deepEqual(outcome(() => parseWelcomeHeaders(headers.value), []), { value: { ...w, tunnelName: wellFormed(name) } })
    }),
    { numRuns: 2000, seed, examples: [[{ sessionId: '6c1f4a5e-9a57-4a38-8f5e-2f0d3e1b7c11', tunnelName: 'x', orgName: 'y', pingIntervalMs: 1000, pingTimeoutMs: 1000 }, '\ud800']] },
  )
})

// ---- the whole connect request, as the agent gateway sees it ----------------------------------

/** A socket stand-in that records what the gateway answers. */
class RecordingSocket extends Duplex {
  readonly written: Buffer[] = []
  readonly finished: Promise<void>
  constructor() {
    let done!: () => void
    super({
      read() {},
      write: (chunk: Buffer, _enc, cb) => {
        this.written.push(chunk)
        cb()
      },
      final: (cb) => {
        done()
        cb()
      },
    })
    this.finished = new Promise((resolve) => (done = resolve))
  }
}

const GATEWAY_CODES = ['TUN_ERR_HANDSHAKE_BAD_REQUEST', 'TUN_ERR_HANDSHAKE_VERSION', 'TUN_ERR_KEY_REJECTED', 'TUN_ERR_TUNNEL_NOT_FOUND'] as const

test('agent gateway: any connect request headers get an HTTP error answer with a catalog code, never an internal error or a hang', async () => {
  const gateway = new AgentGateway(
    { pingIntervalMs: 15_000, pingTimeoutMs: 5_000, drainTimeoutMs: 1_000, maxStreamsPerSession: 100, sessionSetupTimeoutMs: 1_000, authFailures: { maxFailures: Number.MAX_SAFE_INTEGER } },
    {
      registry: new SessionRegistry(),
      log: silentLogger(),
      // Tunnels with an even-length id exist, with a secret hash no presented secret matches.
      findTunnel: async (id) => (id.length % 2 === 0 ? { id, name: 'n', orgName: 'o', secretHash: '00'.repeat(32), applicationLinkUrl: 'https://app.example' } : undefined),
    },
  )
  const request = fc.record({
    method: fc.oneof({ arbitrary: fc.constant('GET'), weight: 8 }, fc.constantFrom('POST', 'get', 'HEAD', 'CONNECT', '')),
    upgrade: fc.oneof(
      { arbitrary: fc.constantFrom(AGENT_UPGRADE_TOKEN, 'APPTUNNEL/2', ' apptunnel/2 ', 'AppTunnel/2\t'), weight: 8 },
      fc.constantFrom(undefined, '', 'websocket', 'h2c', 'apptunnel/1', 'apptunnel/3', 'apptunnel/', 'apptunnel/2, websocket', 'apptunnel'),
      fc.string({ maxLength: 8 }).map((s) => `apptunnel/${s}`),
      headerValue,
    ),
    nodeId: fc.oneof({ arbitrary: fc.stringMatching(/^[A-Za-z0-9._-]{1,64}$/), weight: 6 }, fc.constant(undefined), headerValue),
    instance: fc.oneof(fc.constant(undefined), headerValue, fc.nat(100_000).map((n) => 'i'.repeat(n))),
    version: fc.oneof(fc.constant(undefined), headerValue),
    authorization: fc.oneof({ arbitrary: fc.tuple(tunnelId, secret).map(([id, s]) => formatAgentAuthorization(id, s)), weight: 4 }, authorization),
  })
  try {
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const headers: Record<string, string> = {}
        for (const [name, value] of [
          ['upgrade', r.upgrade],
          [agentHeaders.nodeId, r.nodeId],
          [agentHeaders.instance, r.instance],
          [agentHeaders.version, r.version],
          ['authorization', r.authorization],
        ] as const) {
          if (value !== undefined) headers[name] = value
        }
        const socket = new RecordingSocket()
        gateway.handleUpgrade({ method: r.method, url: AGENT_CONNECT_PATH, headers } as unknown as IncomingMessage, socket, Buffer.alloc(0))
        let timer: NodeJS.Timeout | undefined
        const answered = await Promise.race([socket.finished.then(() => true), new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), 2_000)))])
        clearTimeout(timer)
        socket.destroy()
        assert.ok(answered, 'the gateway answered within 2 s')
        const text = Buffer.concat(socket.written).toString('utf8')
        const [head = '', body = ''] = text.split('\r\n\r\n')
        const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(head)?.[1])
        const json = JSON.parse(body) as { error: { code: ErrorCode; message: string } }
        assert.ok((GATEWAY_CODES as readonly string[]).includes(json.error.code), `answered ${json.error.code}: ${json.error.message}`)
        assert.equal(status, errorCatalog[json.error.code].httpStatus)
        assert.ok(json.error.message.length > 10)
        // The first refusal the documented order of checks gives.
        const upgrade = (r.upgrade ?? '').trim().toLowerCase()
        const expected: ErrorCode =
          r.method !== 'GET'
            ? 'TUN_ERR_HANDSHAKE_BAD_REQUEST'
            : upgrade !== AGENT_UPGRADE_TOKEN
              ? upgrade.startsWith('apptunnel/')
                ? 'TUN_ERR_HANDSHAKE_VERSION'
                : 'TUN_ERR_HANDSHAKE_BAD_REQUEST'
              : r.nodeId === undefined || !/^[A-Za-z0-9._-]{1,64}$/.test(r.nodeId)
                ? 'TUN_ERR_HANDSHAKE_BAD_REQUEST'
                : (() => {
                    const auth = outcome(() => parseAgentAuthorization(r.authorization), ['TUN_ERR_HANDSHAKE_BAD_REQUEST', 'TUN_ERR_KEY_REJECTED'])
                    if ('error' in auth) return auth.error.code
                    return auth.value.tunnelId.length % 2 === 0 ? 'TUN_ERR_KEY_REJECTED' : 'TUN_ERR_TUNNEL_NOT_FOUND'
                  })()
        assert.equal(json.error.code, expected, json.error.message)
        const credentials = r.authorization?.slice(r.authorization.indexOf(' ') + 1).trim() ?? ''
        if (credentials.length >= 20) assert.ok(!text.includes(credentials), 'the answer never echoes the credentials')
      }),
      { numRuns: 2000, seed },
    )
  } finally {
    gateway.close()
  }
})

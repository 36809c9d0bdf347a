import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import fc from 'fast-check'
import { TunnelError } from '../errors/index.ts'
import { SECURITY_KEY_PREFIX, decodeSecurityKey, encodeSecurityKey, isValidTunnelId, type SecurityKey } from './security-key.ts'
import { fuzzSeed } from '../testing/fuzz.ts'

// Property-based fuzzing of the security key parser: whatever a person pastes, decodeSecurityKey
// either returns a well-formed key that survives encode → decode unchanged, or throws a TunnelError
// TUN_ERR_KEY_MALFORMED whose message says what is wrong. Never any other exception.
// FUZZ_SEED=<n> replays or explores another sequence; fast-check prints the seed and the shrunk
// counterexample of a failure.

const seed = fuzzSeed(0x5ec0de)
const RUNS = 2500
const MALFORMED = 'security key is malformed: '
const MAX_KEY_CHARS = 4096

/** The documented envelope, re-implemented: prefix + base64url(JSON ‖ first 4 bytes of SHA-256(JSON)). */
function envelope(json: Buffer): string {
  const sum = createHash('sha256').update(json).digest().subarray(0, 4)
  return SECURITY_KEY_PREFIX + Buffer.concat([json, sum]).toString('base64url')
}

function assertWellFormed(key: SecurityKey): void {
  const expectedFields = key.certificatePin === undefined ? ['secret', 'serverUrl', 'tunnelId'] : ['certificatePin', 'secret', 'serverUrl', 'tunnelId']
  assert.deepEqual(Object.keys(key).sort(), expectedFields)
  const url = new URL(key.serverUrl)
  assert.equal(url.protocol, 'https:')
  assert.equal(url.origin, key.serverUrl, 'serverUrl is an origin')
  assert.ok(isValidTunnelId(key.tunnelId), `tunnel id ${JSON.stringify(key.tunnelId)}`)
  assert.ok(Buffer.isBuffer(key.secret))
  assert.equal(key.secret.length, 32)
  if (key.certificatePin !== undefined) {
    assert.equal(typeof key.certificatePin, 'string')
    assert.equal(Buffer.from(key.certificatePin, 'base64url').length, 32)
  }
}

function assertMalformed(err: unknown): asserts err is TunnelError {
  assert.ok(err instanceof TunnelError, `expected a TunnelError, got ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`)
  assert.equal(err.code, 'TUN_ERR_KEY_MALFORMED', err.message)
  assert.ok(err.message.startsWith(MALFORMED) && err.message.length > MALFORMED.length + 3, `unclear message: ${JSON.stringify(err.message)}`)
}

/** Either a well-formed key that round-trips, or a TUN_ERR_KEY_MALFORMED TunnelError; never anything else. */
function decodeChecked(input: string): { key: SecurityKey } | { error: TunnelError } {
  let key: SecurityKey
  try {
    key = decodeSecurityKey(input)
  } catch (err) {
    assertMalformed(err)
    return { error: err }
  }
  assertWellFormed(key)
  assert.deepEqual(decodeSecurityKey(encodeSecurityKey(key)), key, 'encode(decode(x)) decodes to the same key')
  return { key }
}

// ---- generators -------------------------------------------------------------------------------

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
const base64urlChar = fc.constantFrom(...BASE64URL.split(''))
/** Every character String.prototype.trim removes. */
const TRIMMED = ['\t', '\n', '\v', '\f', '\r', ' ', '\u00a0', '\u1680', '\u2000', '\u2005', '\u200a', '\u2028', '\u2029', '\u202f', '\u205f', '\u3000', '\ufeff']
const whitespace = fc.string({ unit: fc.constantFrom(...TRIMMED), maxLength: 8 })
/** Any UTF-16 code unit, lone surrogates included: what a clipboard or a file may hand over. */
const anyCodeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c))
const anyString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 120 }),
  fc.string({ unit: anyCodeUnit, maxLength: 120 }),
  fc.string({ unit: 'grapheme-ascii', maxLength: 120 }),
)

const tunnelId = fc.stringMatching(/^[a-z][a-z0-9]{7,62}$/)
const secret = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b))
const pin = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('base64url'))
const authority = fc.webAuthority({ withIPv4: true, withIPv6: true, withPort: true })
const httpsOrigin = authority.map((a) => new URL(`https://${a}`).origin)

const validKey: fc.Arbitrary<SecurityKey> = fc
  .record({ serverUrl: httpsOrigin, tunnelId, secret, certificatePin: fc.option(pin, { nil: undefined }) })
  .map(({ certificatePin, ...rest }) => (certificatePin === undefined ? rest : { ...rest, certificatePin }))

type Mutation =
  | { kind: 'replace'; at: number; text: string }
  | { kind: 'insert'; at: number; text: string }
  | { kind: 'delete'; at: number; count: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'prefix'; text: string }
  | { kind: 'case'; at: number }

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('replace' as const), at: fc.nat(), text: fc.oneof(base64urlChar, anyCodeUnit, fc.constantFrom('+', '/', '=', ' ', '\n', '.')) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: fc.oneof(base64urlChar, anyCodeUnit, fc.string({ unit: 'binary', minLength: 1, maxLength: 4 })) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 4 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('prefix' as const), text: fc.oneof(fc.constantFrom('', 'atk0_', 'atk2_', 'ATK1_', 'atk1-', 'atk1', 'atk_', 'atk1__', 'Tunnel '), fc.string({ maxLength: 6 })) }),
  fc.record({ kind: fc.constant('case' as const), at: fc.nat() }),
)

function mutate(text: string, m: Mutation): string {
  const at = text.length === 0 ? 0 : 'at' in m ? m.at % (text.length + 1) : 0
  switch (m.kind) {
    case 'replace':
      return text.slice(0, at) + m.text + text.slice(at + 1)
    case 'insert':
      return text.slice(0, at) + m.text + text.slice(at)
    case 'delete':
      return text.slice(0, at) + text.slice(at + m.count)
    case 'truncate':
      return text.slice(0, at)
    case 'prefix':
      return m.text + text.slice(SECURITY_KEY_PREFIX.length)
    case 'case': {
      const c = text.charAt(at)
      const flipped = c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase()
      return text.slice(0, at) + flipped + text.slice(at + 1)
    }
  }
}

// ---- properties -------------------------------------------------------------------------------

test('arbitrary strings: a well-formed key or TUN_ERR_KEY_MALFORMED, never another exception', () => {
  const input = fc.oneof(
    anyString,
    anyString.map((s) => SECURITY_KEY_PREFIX + s),
    fc.string({ unit: base64urlChar, maxLength: 300 }).map((s) => SECURITY_KEY_PREFIX + s),
    fc.tuple(whitespace, anyString, whitespace).map(([a, s, b]) => a + s + b),
  )
  fc.assert(
    fc.property(input, (s) => {
      decodeChecked(s)
    }),
    { numRuns: RUNS, seed },
  )
})

test('arbitrary bytes as base64url, with and without a valid checksum', () => {
  const bytes = fc.oneof(fc.uint8Array({ maxLength: 600 }), fc.string({ unit: 'binary', maxLength: 200 }).map((s) => new Uint8Array(Buffer.from(s, 'utf8'))))
  fc.assert(
    fc.property(bytes, fc.boolean(), (raw, withChecksum) => {
      const buf = Buffer.from(raw)
      const text = withChecksum ? envelope(buf) : SECURITY_KEY_PREFIX + buf.toString('base64url')
      const out = decodeChecked(text)
      if ('error' in out && withChecksum && text.length <= MAX_KEY_CHARS && buf.length >= 3) {
        // The checksum is right, so the complaint must be about the content, not the envelope.
        assert.doesNotMatch(out.error.message, /checksum|too short|base64url|must start/)
      }
      if ('error' in out && !withChecksum && buf.length > 6) assert.match(out.error.message, /checksum mismatch|longer than/)
    }),
    { numRuns: RUNS, seed },
  )
})

test('mutated valid keys are refused, or decode to exactly the original key', () => {
  fc.assert(
    fc.property(validKey, fc.array(mutation, { minLength: 1, maxLength: 3 }), (key, mutations) => {
      const original = encodeSecurityKey(key)
      const mutated = mutations.reduce(mutate, original)
      const out = decodeChecked(mutated)
      if ('key' in out) {
        // Only a change the envelope cannot see (surrounding whitespace, unused trailing bits of the
        // last base64url character) may still decode, and then to the very same key.
        assert.deepEqual(out.key, decodeSecurityKey(original), `${JSON.stringify(mutated)} decoded to another key`)
      } else {
        assert.ok(!out.error.message.includes(key.secret.toString('base64url')), 'message must not contain the secret')
        assert.ok(!out.error.message.includes(key.secret.toString('hex')), 'message must not contain the secret (hex)')
      }
    }),
    { numRuns: RUNS, seed },
  )
})

// A payload field is generated with what we know of it: valid, invalid (and which check must
// name it), or unknown (arbitrary; only the general property applies).
interface Field {
  value: unknown
  valid: boolean | undefined
}
const valid = (a: fc.Arbitrary<unknown>): fc.Arbitrary<Field> => a.map((value) => ({ value, valid: true }))
const invalid = (a: fc.Arbitrary<unknown>): fc.Arbitrary<Field> => a.map((value) => ({ value, valid: false }))
const unknown = (a: fc.Arbitrary<unknown>): fc.Arbitrary<Field> => a.map((value) => ({ value, valid: undefined }))
const ABSENT = Symbol('absent')
const nonString = fc.oneof(fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(fc.jsonValue({ maxDepth: 1 }), { maxLength: 3 }), fc.dictionary(fc.string({ maxLength: 4 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 }))
const b64OfLength = (lengths: fc.Arbitrary<number>): fc.Arbitrary<string> => lengths.chain((n) => fc.uint8Array({ minLength: n, maxLength: n })).map((b) => Buffer.from(b).toString('base64url'))
const wrongLength = fc.oneof(fc.integer({ min: 0, max: 31 }), fc.integer({ min: 33, max: 80 }))

// Each field is valid about two times in three, so that every check is reached and some keys pass.
const fields = {
  v: fc.oneof({ arbitrary: valid(fc.constant(1)), weight: 6 }, invalid(fc.oneof(fc.constant(ABSENT), fc.constantFrom(0, 2, -1, 1.5, '1', true, null, [1], { v: 1 }), fc.jsonValue({ maxDepth: 2 }).filter((v) => v !== 1)))),
  u: fc.oneof(
    { arbitrary: valid(httpsOrigin), weight: 4 },
    { arbitrary: valid(fc.webUrl({ validSchemes: ['https'], withQueryParameters: true, withFragments: true })), weight: 4 },
    invalid(authority.map((a) => `http://${a}`)),
    invalid(fc.constantFrom(ABSENT, '', 'not a url', 'tunnel.example.com', '//tunnel.example.com', 'https://', 'https://exa mple.com', 'ftp://tunnel.example.com', 'file:///etc/passwd', 'javascript:alert(1)', 'wss://tunnel.example.com')),
    invalid(nonString),
    unknown(anyString),
  ),
  t: fc.oneof(
    { arbitrary: valid(tunnelId), weight: 6 },
    invalid(fc.constantFrom(ABSENT, '', 'short', 'UPPERCASE1', '1abcdefgh', 'abc-defgh', 'abcdefgh ', 'a'.repeat(64), 'tabcdefgh1\n')),
    invalid(anyString.filter((s) => !/^[a-z][a-z0-9]{7,62}$/.test(s))),
    invalid(nonString),
  ),
  s: fc.oneof({ arbitrary: valid(secret.map((b) => b.toString('base64url'))), weight: 8 }, invalid(b64OfLength(wrongLength)), invalid(fc.constant(ABSENT)), invalid(nonString), unknown(anyString)),
  p: fc.oneof({ arbitrary: valid(fc.constant(ABSENT)), weight: 4 }, { arbitrary: valid(pin), weight: 4 }, invalid(b64OfLength(wrongLength)), invalid(nonString), unknown(anyString)),
}
const CHECK_ORDER = [
  ['v', /unsupported key version/],
  ['u', /server URL/],
  ['t', /tunnel id/],
  ['s', /secret/],
  ['p', /certificate pin/],
] as const

test('valid JSON payloads with wrong field types and lengths: the first bad field is named', () => {
  const extra = fc.dictionary(fc.string({ maxLength: 6 }).filter((k) => !['v', 'u', 't', 's', 'p'].includes(k)), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 })
  fc.assert(
    fc.property(fc.record(fields), extra, fc.boolean(), (f, more, extraFirst) => {
      const payload: Record<string, unknown> = extraFirst ? { ...more } : {}
      for (const name of ['v', 'u', 't', 's', 'p'] as const) if (f[name].value !== ABSENT) payload[name] = f[name].value
      if (!extraFirst) Object.assign(payload, more)
      const text = envelope(Buffer.from(JSON.stringify(payload), 'utf8'))
      const out = decodeChecked(text)
      if (text.length > MAX_KEY_CHARS) {
        assert.ok('error' in out && /longer than 4096/.test(out.error.message))
        return
      }
      const firstNotValid = CHECK_ORDER.find(([name]) => f[name].valid !== true)
      if (firstNotValid === undefined) {
        assert.ok('key' in out, `all fields valid, yet refused: ${'error' in out ? out.error.message : ''}`)
        const expected: SecurityKey = { serverUrl: new URL(f.u.value as string).origin, tunnelId: f.t.value as string, secret: Buffer.from(f.s.value as string, 'base64url') }
        if (f.p.value !== ABSENT) expected.certificatePin = f.p.value as string
        assert.deepEqual(out.key, expected)
      } else if (f[firstNotValid[0]].valid === false) {
        assert.ok('error' in out, `field ${firstNotValid[0]}=${JSON.stringify(f[firstNotValid[0]].value)} is invalid, yet the key was accepted`)
        assert.match(out.error.message, firstNotValid[1])
      }
    }),
    { numRuns: RUNS, seed },
  )
})

test('huge inputs are refused quickly as too long, whitespace-only as empty', () => {
  const filler = fc.oneof(base64urlChar, anyCodeUnit.filter((c) => c.trim() !== ''))
  fc.assert(
    fc.property(fc.constantFrom('', SECURITY_KEY_PREFIX, 'atk2_'), filler, fc.integer({ min: MAX_KEY_CHARS + 1, max: 200_000 }), whitespace, (prefix, c, n, pad) => {
      const text = pad + prefix + c.repeat(Math.max(1, n - prefix.length)) + pad
      const out = decodeChecked(text)
      assert.ok('error' in out && /longer than 4096/.test(out.error.message), 'a key over 4096 characters is refused as too long')
    }),
    { numRuns: 2000, seed },
  )
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 100_000 }), fc.constantFrom(...TRIMMED), (n, c) => {
      const out = decodeChecked(c.repeat(n))
      assert.ok('error' in out && /empty/.test(out.error.message))
    }),
    { numRuns: 2000, seed },
  )
})

test('surrounding whitespace (any amount, any kind trim removes) is forgiven', () => {
  fc.assert(
    fc.property(validKey, whitespace, whitespace, fc.nat(5000), (key, before, after, extra) => {
      const text = before + ' '.repeat(extra) + encodeSecurityKey(key) + after
      assert.deepEqual(decodeChecked(text), { key })
    }),
    { numRuns: 2000, seed },
  )
})

test('encode → decode round-trips any valid key; an http server URL is refused as not https', () => {
  fc.assert(
    fc.property(
      fc.constantFrom('https', 'http'),
      authority,
      fc.option(fc.webPath(), { nil: undefined }),
      tunnelId,
      secret,
      fc.option(pin, { nil: undefined }),
      (scheme, host, path, id, s, certificatePin) => {
        const serverUrl = `${scheme}://${host}${path ?? ''}`
        const key: SecurityKey = { serverUrl, tunnelId: id, secret: s, ...(certificatePin === undefined ? {} : { certificatePin }) }
        const text = encodeSecurityKey(key)
        assert.ok(text.startsWith(SECURITY_KEY_PREFIX))
        assert.match(text.slice(SECURITY_KEY_PREFIX.length), /^[A-Za-z0-9_-]+$/)
        const out = decodeChecked(text)
        if (scheme === 'http') {
          assert.ok('error' in out && /must use https \(got "http:"\)/.test(out.error.message), 'an http server URL is named as such')
        } else {
          assert.deepEqual(out, { key: { ...key, serverUrl: new URL(serverUrl).origin } })
        }
      },
    ),
    { numRuns: RUNS, seed },
  )
})

test('a decoded certificate pin is the canonical base64url text agent-dial compares with (a non-canonical pin is malformed, not a later certificate mismatch)', () => {
  // Variants of a valid pin that Buffer.from(…, 'base64url') still reads as 32 bytes.
  const sloppyPin = fc.tuple(pin, fc.nat(), fc.constantFrom('=', '==', '!', ' ', '.', '+', '/', 'tail-bits')).map(([p, at, how]) => {
    // 43 characters carry 258 bits for 256: the last one's low 2 bits are unused (0 when canonical).
    if (how === 'tail-bits') return p.slice(0, -1) + BASE64URL[BASE64URL.indexOf(p.at(-1)!) + 1 + (at % 3)]
    const i = at % (p.length + 1)
    return p.slice(0, i) + how + p.slice(i)
  })
  fc.assert(
    fc.property(validKey, sloppyPin, (key, p) => {
      const payload = { v: 1, u: key.serverUrl, t: key.tunnelId, s: key.secret.toString('base64url'), p }
      const out = decodeChecked(envelope(Buffer.from(JSON.stringify(payload), 'utf8')))
      if ('key' in out) {
        const canonical = Buffer.from(out.key.certificatePin!, 'base64url').toString('base64url')
        assert.equal(out.key.certificatePin, canonical, `pin ${JSON.stringify(p)} was accepted but is not canonical base64url`)
      }
    }),
    { numRuns: 2000, seed, examples: [[{ serverUrl: 'https://a.example', tunnelId: 'tabcdefgh1', secret: Buffer.alloc(32) }, 'A'.repeat(42) + 'B']] },
  )
})

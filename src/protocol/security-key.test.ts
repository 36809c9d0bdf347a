import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { TunnelError } from '../errors/index.ts'
import { SECURITY_KEY_PREFIX, decodeSecurityKey, encodeSecurityKey, hashSecret, type SecurityKey } from './security-key.ts'

const secret = Buffer.alloc(32)
for (let i = 0; i < 32; i++) secret[i] = (i * 37 + 11) & 0xff
const secretText = secret.toString('base64url')
const pin = createHash('sha256').update('spki').digest('base64url')
const baseKey: SecurityKey = { serverUrl: 'https://tunnel.example.com', tunnelId: 'tabcdefgh1', secret }

/** The documented envelope, re-implemented: prefix + base64url(JSON ‖ first 4 bytes of SHA-256(JSON)). */
function envelope(payload: unknown): string {
  const json = Buffer.from(JSON.stringify(payload), 'utf8')
  const sum = createHash('sha256').update(json).digest().subarray(0, 4)
  return 'atk1_' + Buffer.concat([json, sum]).toString('base64url')
}

function validPayload(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { v: 1, u: 'https://tunnel.example.com', t: 'tabcdefgh1', s: secretText, ...overrides }
}

function assertMalformed(input: string, message: RegExp): void {
  assert.throws(
    () => decodeSecurityKey(input),
    (err: unknown) => {
      assert.ok(err instanceof TunnelError, 'a TunnelError')
      assert.equal(err.code, 'TUN_ERR_KEY_MALFORMED')
      assert.match(err.message, message)
      assert.ok(!err.message.includes(secretText), 'message must not contain the secret')
      assert.ok(!err.message.includes(secret.toString('hex')), 'message must not contain the secret (hex)')
      return true
    },
  )
}

test('round trip without a certificate pin', () => {
  const text = encodeSecurityKey(baseKey)
  assert.ok(text.startsWith(SECURITY_KEY_PREFIX))
  const back = decodeSecurityKey(text)
  assert.equal(back.serverUrl, baseKey.serverUrl)
  assert.equal(back.tunnelId, baseKey.tunnelId)
  assert.ok(back.secret.equals(secret))
  assert.equal(back.certificatePin, undefined)
  assert.ok(!('certificatePin' in back))
})

test('round trip with a certificate pin', () => {
  const back = decodeSecurityKey(encodeSecurityKey({ ...baseKey, certificatePin: pin }))
  assert.deepEqual(back, { ...baseKey, certificatePin: pin })
})

test('encoding matches the documented envelope', () => {
  assert.equal(encodeSecurityKey(baseKey), envelope(validPayload()))
})

test('hashSecret is the hex SHA-256 of the secret', () => {
  const h = hashSecret(secret)
  assert.match(h, /^[0-9a-f]{64}$/)
  assert.equal(h, createHash('sha256').update(secret).digest('hex'))
  assert.notEqual(hashSecret(Buffer.alloc(32)), h)
})

test('decode forgives surrounding whitespace and newlines', () => {
  const text = encodeSecurityKey(baseKey)
  for (const padded of [`  ${text}  `, `\n${text}\n`, `\r\n\t${text}\r\n`]) {
    assert.deepEqual(decodeSecurityKey(padded), baseKey)
  }
})

test('empty key', () => {
  assertMalformed('', /empty/)
  assertMalformed('  \n ', /empty/)
})

test('wrong prefix', () => {
  const text = encodeSecurityKey(baseKey)
  assertMalformed('atk2_' + text.slice(5), /must start with "atk1_"/)
  assertMalformed(text.slice(5), /must start with "atk1_"/)
})

test('non-base64url characters inside', () => {
  const text = encodeSecurityKey(baseKey)
  const mid = Math.floor(text.length / 2)
  assertMalformed(text.slice(0, mid) + ' ' + text.slice(mid), /not base64url/)
  assertMalformed(text.slice(0, mid) + '\n' + text.slice(mid), /not base64url/)
  assertMalformed(text.slice(0, mid) + '+' + text.slice(mid), /not base64url/)
})

test('truncated key gives a checksum mismatch', () => {
  const text = encodeSecurityKey(baseKey)
  assertMalformed(text.slice(0, -10), /checksum mismatch/)
})

test('very short key is named too short', () => {
  assertMalformed('atk1_AAAA', /too short/)
})

test('one character changed gives a checksum mismatch', () => {
  const text = encodeSecurityKey(baseKey)
  const i = 20
  const changed = text.slice(0, i) + (text[i] === 'A' ? 'B' : 'A') + text.slice(i + 1)
  assert.notEqual(changed, text)
  assertMalformed(changed, /checksum mismatch/)
})

test('too long key', () => {
  assertMalformed('atk1_' + 'A'.repeat(4096), /longer than 4096/)
})

test('valid checksum, unsupported version', () => {
  assertMalformed(envelope(validPayload({ v: 2 })), /unsupported key version 2/)
})

test('valid checksum, http server URL', () => {
  assertMalformed(envelope(validPayload({ u: 'http://tunnel.example.com' })), /must use https/)
})

test('valid checksum, server URL that is not a URL', () => {
  assertMalformed(envelope(validPayload({ u: 'not a url' })), /is not a URL/)
})

test('valid checksum, missing server URL', () => {
  assertMalformed(envelope(validPayload({ u: 42 })), /server URL is missing/)
})

test('valid checksum, bad tunnel id', () => {
  for (const t of ['short', 'UPPERCASE1', '1abcdefgh', 'abc-defgh', 42]) {
    assertMalformed(envelope(validPayload({ t })), /tunnel id is missing or invalid/)
  }
})

test('valid checksum, 31-byte secret', () => {
  assertMalformed(envelope(validPayload({ s: secret.subarray(0, 31).toString('base64url') })), /secret must be 32 bytes \(got 31\)/)
})

test('valid checksum, bad certificate pin length', () => {
  assertMalformed(envelope(validPayload({ p: Buffer.alloc(31).toString('base64url') })), /certificate pin is invalid/)
  assertMalformed(envelope(validPayload({ p: Buffer.alloc(33).toString('base64url') })), /certificate pin is invalid/)
})

test('valid checksum, content that is not a JSON object', () => {
  const json = Buffer.from('null', 'utf8')
  const sum = createHash('sha256').update(json).digest().subarray(0, 4)
  assertMalformed('atk1_' + Buffer.concat([json, sum]).toString('base64url'), /not readable/)
  const garbage = Buffer.from('{not json', 'utf8')
  const sum2 = createHash('sha256').update(garbage).digest().subarray(0, 4)
  assertMalformed('atk1_' + Buffer.concat([garbage, sum2]).toString('base64url'), /not readable/)
})

test('unknown payload fields are ignored', () => {
  assert.deepEqual(decodeSecurityKey(envelope(validPayload({ future: true }))), baseKey)
})

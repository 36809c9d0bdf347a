import { test } from 'node:test'
import assert from 'node:assert/strict'
import { TunnelError, type ErrorCode } from '../errors/index.ts'
import {
  AGENT_AUTH_SCHEME,
  agentHeaders,
  formatAgentAuthorization,
  formatWelcomeHeaders,
  parseAgentAuthorization,
  parseNodeId,
  parseWelcomeHeaders,
  type SessionWelcome,
} from './agent-handshake.ts'

const secret = Buffer.alloc(32)
for (let i = 0; i < 32; i++) secret[i] = 255 - i * 3
const ID = 'tabcdefgh1'

function rejects(work: () => unknown, code: ErrorCode, message?: RegExp): void {
  assert.throws(work, (err: unknown) => {
    assert.ok(err instanceof TunnelError, 'a TunnelError')
    assert.equal(err.code, code, err.message)
    if (message !== undefined) assert.match(err.message, message)
    return true
  })
}

test('authorization round trip', () => {
  const value = formatAgentAuthorization(ID, secret)
  assert.equal(value, `${AGENT_AUTH_SCHEME} ${ID}.${secret.toString('base64url')}`)
  const creds = parseAgentAuthorization(value)
  assert.equal(creds.tunnelId, ID)
  assert.ok(creds.secret.equals(secret))
})

test('authorization tolerates surrounding whitespace in the credentials', () => {
  const creds = parseAgentAuthorization(`Tunnel   ${ID}.${secret.toString('base64url')}  `)
  assert.equal(creds.tunnelId, ID)
  assert.ok(creds.secret.equals(secret))
})

test('missing Authorization header', () => {
  rejects(() => parseAgentAuthorization(undefined), 'TUN_ERR_HANDSHAKE_BAD_REQUEST', /missing/)
})

test('the auth scheme is case-insensitive', () => {
  const secret = Buffer.alloc(32, 3)
  const value = formatAgentAuthorization('abcdefgh12345678', secret).replace('Tunnel', 'tUNNEL')
  assert.equal(parseAgentAuthorization(value).tunnelId, 'abcdefgh12345678')
})

test('wrong scheme', () => {
  const creds = `${ID}.${secret.toString('base64url')}`
  rejects(() => parseAgentAuthorization(`Bearer ${creds}`), 'TUN_ERR_HANDSHAKE_BAD_REQUEST', /"Tunnel" scheme/)
  rejects(() => parseAgentAuthorization(`Basic ${creds}`), 'TUN_ERR_HANDSHAKE_BAD_REQUEST', /"Tunnel" scheme/)
  rejects(() => parseAgentAuthorization(creds), 'TUN_ERR_HANDSHAKE_BAD_REQUEST', /"Tunnel" scheme/)
  rejects(() => parseAgentAuthorization(''), 'TUN_ERR_HANDSHAKE_BAD_REQUEST', /"Tunnel" scheme/)
})

test('bad tunnel id', () => {
  const s = secret.toString('base64url')
  for (const id of ['short', 'UPPERCASE1', '1abcdefgh', 'abc-defgh', '']) {
    rejects(() => parseAgentAuthorization(`Tunnel ${id}.${s}`), 'TUN_ERR_KEY_REJECTED', /malformed/)
  }
  rejects(() => parseAgentAuthorization(`Tunnel ${ID}${s}`), 'TUN_ERR_KEY_REJECTED', /malformed/)
})

test('short or long secret', () => {
  rejects(() => parseAgentAuthorization(`Tunnel ${ID}.${secret.subarray(0, 31).toString('base64url')}`), 'TUN_ERR_KEY_REJECTED')
  rejects(() => parseAgentAuthorization(`Tunnel ${ID}.${Buffer.concat([secret, Buffer.of(1)]).toString('base64url')}`), 'TUN_ERR_KEY_REJECTED')
  rejects(() => parseAgentAuthorization(`Tunnel ${ID}.`), 'TUN_ERR_KEY_REJECTED')
})

test('rejection messages never contain the secret', () => {
  const s = secret.toString('base64url')
  for (const value of [`Tunnel bad.${s}`, `Tunnel ${ID}.${s.slice(0, -2)}`, `Bearer ${ID}.${s}`]) {
    assert.throws(
      () => parseAgentAuthorization(value),
      (err: unknown) => err instanceof Error && !err.message.includes(s.slice(0, 20)),
    )
  }
})

test('node id', () => {
  assert.equal(parseNodeId('node-1.example_A'), 'node-1.example_A')
  assert.equal(parseNodeId('x'.repeat(64)), 'x'.repeat(64))
  for (const v of [undefined, '', 'x'.repeat(65), 'has space', 'slash/no', 'ünï']) {
    rejects(() => parseNodeId(v), 'TUN_ERR_HANDSHAKE_BAD_REQUEST', /x-apptunnel-node-id/)
  }
})

const welcome: SessionWelcome = {
  sessionId: '6c1f4a5e-9a57-4a38-8f5e-2f0d3e1b7c11',
  tunnelName: 'Büro Köln — staging 🚀 / a%b',
  orgName: 'Acme, Inc. & Söhne',
  pingIntervalMs: 15_000,
  pingTimeoutMs: 5_000,
}

test('welcome headers round trip, including names with spaces and unicode', () => {
  const headers = formatWelcomeHeaders(welcome)
  for (const v of Object.values(headers)) {
    assert.match(v, /^[\x21-\x7e]*$/, 'header values are visible ASCII')
  }
  assert.deepEqual(parseWelcomeHeaders(headers), welcome)
})

test('welcome header names are the documented ones', () => {
  assert.deepEqual(Object.keys(formatWelcomeHeaders(welcome)).sort(), [
    agentHeaders.orgName,
    agentHeaders.pingIntervalMs,
    agentHeaders.pingTimeoutMs,
    agentHeaders.sessionId,
    agentHeaders.tunnelName,
  ].sort())
})

test('ping bounds are inclusive', () => {
  const headers = formatWelcomeHeaders({ ...welcome, pingIntervalMs: 100, pingTimeoutMs: 600_000 })
  const w = parseWelcomeHeaders(headers)
  assert.equal(w.pingIntervalMs, 100)
  assert.equal(w.pingTimeoutMs, 600_000)
})

test('invalid ping values are rejected', () => {
  const good = formatWelcomeHeaders(welcome)
  for (const name of [agentHeaders.pingIntervalMs, agentHeaders.pingTimeoutMs]) {
    for (const value of ['', 'abc', '-5', '1.5', '1e4', ' 1000', '99', '0', '600001', '9999999999', '0x100']) {
      rejects(() => parseWelcomeHeaders({ ...good, [name]: value }), 'TUN_ERR_HANDSHAKE_BAD_REQUEST', new RegExp(`invalid ${name}`))
    }
    rejects(() => parseWelcomeHeaders({ ...good, [name]: undefined }), 'TUN_ERR_HANDSHAKE_BAD_REQUEST')
    rejects(() => parseWelcomeHeaders({ ...good, [name]: ['1000', '1000'] }), 'TUN_ERR_HANDSHAKE_BAD_REQUEST')
  }
})

test('missing or undecodable welcome text headers are rejected', () => {
  const good = formatWelcomeHeaders(welcome)
  for (const name of [agentHeaders.sessionId, agentHeaders.tunnelName, agentHeaders.orgName]) {
    rejects(() => parseWelcomeHeaders({ ...good, [name]: undefined }), 'TUN_ERR_HANDSHAKE_BAD_REQUEST', /did not send/)
    rejects(() => parseWelcomeHeaders({ ...good, [name]: '%E0%A4%A' }), 'TUN_ERR_HANDSHAKE_BAD_REQUEST', /invalid/)
  }
})

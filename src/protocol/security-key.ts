import { createHash } from 'node:crypto'
import { TunnelError } from '../errors/index.ts'

/**
 * The security key: everything an agent needs to reach its tunnel, in one copy-pasteable string.
 *
 *   atk1_<base64url( JSON payload ‖ first 4 bytes of SHA-256(JSON payload) )>
 *
 * The checksum lets us tell a truncated or mistyped key ("checksum mismatch") from a key the
 * server does not know (which only the server can say). JSON keeps the payload extensible; unknown
 * fields are ignored so an older agent can read a newer key.
 */
export const SECURITY_KEY_PREFIX = 'atk1_'
export const SECRET_BYTES = 32
const CHECKSUM_BYTES = 4
const MAX_KEY_CHARS = 4096
const TUNNEL_ID_PATTERN = /^[a-z][a-z0-9]{7,62}$/
const BASE64URL_PATTERN = /^[A-Za-z0-9_-]+$/

export interface SecurityKey {
  /** Agent endpoint of the tunnel server, e.g. `https://tunnel.example.com` */
  serverUrl: string
  tunnelId: string
  /** 32 random bytes; the server keeps only a hash */
  secret: Buffer
  /** base64url SHA-256 of the server certificate's SubjectPublicKeyInfo, set for a self-signed server */
  certificatePin?: string
}

interface KeyPayload {
  v: 1
  u: string
  t: string
  s: string
  p?: string
}

/** A certificate pin as keys and replica lists carry it: canonical base64url of 32 bytes. */
export function isCanonicalPin(pin: string): boolean {
  return /^[A-Za-z0-9_-]{43}$/.test(pin) && Buffer.from(pin, 'base64url').toString('base64url') === pin
}

export function isValidTunnelId(id: string): boolean {
  return TUNNEL_ID_PATTERN.test(id)
}

export function encodeSecurityKey(key: SecurityKey): string {
  const payload: KeyPayload = { v: 1, u: key.serverUrl, t: key.tunnelId, s: key.secret.toString('base64url') }
  if (key.certificatePin !== undefined) payload.p = key.certificatePin
  const json = Buffer.from(JSON.stringify(payload), 'utf8')
  const sum = createHash('sha256').update(json).digest().subarray(0, CHECKSUM_BYTES)
  return SECURITY_KEY_PREFIX + Buffer.concat([json, sum]).toString('base64url')
}

function malformed(why: string): TunnelError {
  return new TunnelError('TUN_ERR_KEY_MALFORMED', `security key is malformed: ${why}`)
}

/** Parses a key pasted by a person: surrounding whitespace is forgiven, anything else is named. */
export function decodeSecurityKey(input: string): SecurityKey {
  const text = input.trim()
  if (text.length === 0) throw malformed('it is empty')
  if (text.length > MAX_KEY_CHARS) throw malformed(`it is longer than ${MAX_KEY_CHARS} characters`)
  if (!text.startsWith(SECURITY_KEY_PREFIX)) {
    throw malformed(`it must start with "${SECURITY_KEY_PREFIX}" (copy the whole key shown when the tunnel was created)`)
  }
  const body = text.slice(SECURITY_KEY_PREFIX.length)
  if (!BASE64URL_PATTERN.test(body)) throw malformed('it contains characters that are not base64url (spaces or line breaks inside?)')
  const raw = Buffer.from(body, 'base64url')
  if (raw.length <= CHECKSUM_BYTES + 2) throw malformed('it is too short (truncated?)')
  const json = raw.subarray(0, raw.length - CHECKSUM_BYTES)
  const sum = raw.subarray(raw.length - CHECKSUM_BYTES)
  if (!createHash('sha256').update(json).digest().subarray(0, CHECKSUM_BYTES).equals(sum)) {
    throw malformed('checksum mismatch (the key was truncated or mistyped)')
  }
  let payload: unknown
  try {
    payload = JSON.parse(json.toString('utf8'))
  } catch {
    throw malformed('its content is not readable')
  }
  if (typeof payload !== 'object' || payload === null) throw malformed('its content is not readable')
  const p = payload as Partial<Record<keyof KeyPayload, unknown>>
  if (p.v !== 1) throw malformed(`unsupported key version ${JSON.stringify(p.v)} (this agent reads version 1)`)
  if (typeof p.u !== 'string') throw malformed('the server URL is missing')
  let url: URL
  try {
    url = new URL(p.u)
  } catch {
    throw malformed(`the server URL "${p.u}" is not a URL`)
  }
  if (url.protocol !== 'https:') throw malformed(`the server URL must use https (got "${url.protocol}")`)
  if (typeof p.t !== 'string' || !isValidTunnelId(p.t)) throw malformed('the tunnel id is missing or invalid')
  if (typeof p.s !== 'string') throw malformed('the secret is missing')
  const secret = Buffer.from(p.s, 'base64url')
  if (secret.length !== SECRET_BYTES) throw malformed(`the secret must be ${SECRET_BYTES} bytes (got ${secret.length})`)
  const key: SecurityKey = { serverUrl: url.origin, tunnelId: p.t, secret }
  if (p.p !== undefined) {
    // Canonical text only: the agent compares the pin as text, so a lenient decode would accept a
    // key that can never connect (and then blame the certificate).
    if (typeof p.p !== 'string' || !isCanonicalPin(p.p)) {
      throw malformed('the certificate pin is invalid')
    }
    key.certificatePin = p.p
  }
  return key
}

/** The only form of the secret the server keeps. */
export function hashSecret(secret: Buffer): string {
  return createHash('sha256').update(secret).digest('hex')
}

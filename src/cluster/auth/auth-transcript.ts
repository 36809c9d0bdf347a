import { createHmac, createSecretKey, hkdfSync, timingSafeEqual, type KeyObject } from 'node:crypto'
import { KID_BYTES, MAC_BYTES, encodeChallenge, encodeProofBody, type Challenge, type Proof } from './auth-messages.ts'

/**
 * Keys and MACs of the cluster handshake.
 *
 * From the one shared secret (the `cluster.auth.secret.key` row) HKDF-SHA256 derives three
 * independent values: the client→server MAC key, the server→client MAC key and the 8-byte key id.
 * Separate direction keys make a server's proof useless as a client's proof and vice versa
 * (reflection), and the key id lets a peer name the key it used without revealing anything about it.
 *
 * Both MACs cover the same transcript: a label, then the CHALLENGE payload and the PROOF payload
 * without its MAC, each length-prefixed. That binds both nonces, both node ids, the versions, the
 * flags and both key ids; a proof is therefore good for exactly one server challenge (replay) and
 * one pair of identities. The role letter before the transcript is a second, independent guard.
 */
export interface ClusterKey {
  /** 8 bytes, public: names the key on the wire */
  readonly kid: Buffer
  readonly kidHex: string
  /** imported once as KeyObjects: an HMAC per handshake then skips the key import */
  readonly clientToServer: KeyObject
  readonly serverToClient: KeyObject
  /** input of the per-link bus keys (deriveLinkKeys); never used as a MAC key itself */
  readonly busRoot: KeyObject
}

/** The bus keys of one link, from one side's point of view. */
export interface LinkKeys {
  send: KeyObject
  receive: KeyObject
}

const HKDF_SALT = Buffer.from('apptunnel/cluster-auth/v1', 'latin1')
const TRANSCRIPT_LABEL = Buffer.from('APPTUNNEL-CLUSTER-AUTH/1', 'latin1')
const ROLE_CLIENT = Buffer.from('C', 'latin1')
const ROLE_SERVER = Buffer.from('S', 'latin1')

/** A kid that names no key: what a node without a secret puts on the wire. */
export const NO_KID = Buffer.alloc(KID_BYTES)
export const NO_MAC = Buffer.alloc(MAC_BYTES)

/** Derives the handshake keys from the secret as stored (its UTF-8 bytes are the HKDF input). */
export function deriveClusterKey(secret: string): ClusterKey {
  if (secret.length === 0) throw new TypeError('an empty secret derives no key')
  const ikm = Buffer.from(secret, 'utf8')
  const derive = (info: string, bytes: number): Buffer => Buffer.from(hkdfSync('sha256', ikm, HKDF_SALT, info, bytes))
  const kid = derive('key-id', KID_BYTES)
  return Object.freeze({
    kid,
    kidHex: kid.toString('hex'),
    clientToServer: createSecretKey(derive('client-to-server', 32)),
    serverToClient: createSecretKey(derive('server-to-client', 32)),
    busRoot: createSecretKey(derive('bus-link', 32)),
  })
}

const NO_ROOT = Buffer.alloc(0)

/**
 * The MAC keys of one bus link: HKDF-SHA256 with the key's bus root as input, the link's whole
 * handshake transcript as salt, and the direction as info. Both nonces are fresh per connection,
 * so every link has its own pair; the two directions differ, so a frame reflected back to its
 * sender does not verify. Without a key (authentication disabled) the input is empty: the frames
 * are still numbered and checked, which catches corruption, but anyone can compute those keys.
 */
export function deriveLinkKeys(key: ClusterKey | undefined, t: Buffer, role: 'client' | 'server'): LinkKeys {
  const ikm = key?.busRoot ?? NO_ROOT
  const derive = (info: string): KeyObject => createSecretKey(Buffer.from(hkdfSync('sha256', ikm, t, info, 32)))
  const c2s = derive('bus client-to-server')
  const s2c = derive('bus server-to-client')
  return role === 'client' ? { send: c2s, receive: s2c } : { send: s2c, receive: c2s }
}

export function transcript(challenge: Challenge, proof: Omit<Proof, 'mac'>): Buffer {
  const c = encodeChallenge(challenge)
  const p = encodeProofBody(proof)
  const head = Buffer.allocUnsafe(TRANSCRIPT_LABEL.length + 4)
  TRANSCRIPT_LABEL.copy(head)
  head.writeUInt16BE(c.length, TRANSCRIPT_LABEL.length)
  head.writeUInt16BE(p.length, TRANSCRIPT_LABEL.length + 2)
  return Buffer.concat([head, c, p])
}

export function clientMac(key: ClusterKey, t: Buffer): Buffer {
  return createHmac('sha256', key.clientToServer).update(ROLE_CLIENT).update(t).digest()
}

export function serverMac(key: ClusterKey, t: Buffer): Buffer {
  return createHmac('sha256', key.serverToClient).update(ROLE_SERVER).update(t).digest()
}

/** Constant-time comparison; the length check comes first because timingSafeEqual throws on a mismatch. */
export function macEquals(expected: Buffer, received: Buffer): boolean {
  return expected.length === received.length && timingSafeEqual(expected, received)
}

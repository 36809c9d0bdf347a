import { TunnelError, type ErrorCode } from '../../errors/index.ts'
import type { FrameFormat } from '../wire/frame-decoder.ts'

/**
 * The four handshake messages of a cluster connection (docs/cluster.md has the byte layout):
 *
 *   server → client  CHALLENGE  magic "ATCB", versions, flags, key id, server nonce, server node id
 *   client → server  PROOF      version, flags, key id, client nonce, client node id, client MAC
 *   server → client  OK         server MAC                       (then the bus starts)
 *   either way       ERR        one-byte reason                  (then the sender closes)
 *
 * Every field has a fixed size except the node ids, which are length-prefixed; a decoder refuses
 * any payload whose length does not add up exactly (a lying length is a protocol error).
 */

/** Frames of the handshake: 2-byte lengths, at most 512 payload bytes. */
export const AUTH_FRAME_FORMAT: FrameFormat = { lengthBytes: 2, maxPayloadBytes: 512 }

/** A peer may send at most this many bytes before authentication completes. */
export const MAX_PRE_AUTH_BYTES = 1024

export const FRAME_CHALLENGE = 0x01
export const FRAME_PROOF = 0x02
export const FRAME_OK = 0x03
export const FRAME_ERR = 0x04

/**
 * 2: every bus frame after OK carries a MAC (wire/frame-seal.ts). A version-1 node and a version-2
 * node refuse each other at the CHALLENGE (TUN_ERR_CLUSTER_AUTH_VERSION) rather than misread frames.
 */
export const PROTOCOL_VERSION = 2
export const MAGIC = Buffer.from('ATCB', 'latin1')
export const NONCE_BYTES = 32
export const KID_BYTES = 8
export const MAC_BYTES = 32
/** flags bit 0: the sender has no secret (authentication disabled on its side) */
export const FLAG_NO_SECRET = 0x01
/**
 * flags bit 1. In a CHALLENGE: this node accepts forwarded caller connections. In a PROOF: this
 * connection carries one caller connection forwarded by a replica, not a bus link. Both flags are
 * inside the transcript, so the purpose of a connection is as authenticated as the peer itself.
 */
export const FLAG_FORWARD = 0x02

const NODE_ID = /^[A-Za-z0-9._-]{1,64}$/

export interface Challenge {
  versionMin: number
  versionMax: number
  flags: number
  kid: Buffer
  nonce: Buffer
  nodeId: string
}

export interface Proof {
  version: number
  flags: number
  kid: Buffer
  nonce: Buffer
  nodeId: string
  mac: Buffer
}

/** Reasons carried by an ERR frame. The byte values are wire format: never renumber one. */
export const WIRE_ERRORS = {
  1: 'TUN_ERR_CLUSTER_AUTH_PROTOCOL',
  2: 'TUN_ERR_CLUSTER_AUTH_VERSION',
  3: 'TUN_ERR_CLUSTER_AUTH_UNKNOWN_KEY',
  4: 'TUN_ERR_CLUSTER_AUTH_BAD_PROOF',
  5: 'TUN_ERR_CLUSTER_AUTH_REQUIRED',
  6: 'TUN_ERR_CLUSTER_FRAME_TOO_LARGE',
  7: 'TUN_ERR_CLUSTER_AUTH_REFLECTION',
  8: 'TUN_ERR_CLUSTER_AUTH_WRONG_PEER',
  9: 'TUN_ERR_CLUSTER_AUTH_SELF_CONNECTION',
  10: 'TUN_ERR_CLUSTER_BUSY',
} as const satisfies Record<number, ErrorCode>

export type WireErrorCode = (typeof WIRE_ERRORS)[keyof typeof WIRE_ERRORS]

export function isNodeId(v: string): boolean {
  return NODE_ID.test(v)
}

export function wireByteOf(code: ErrorCode): number | undefined {
  for (const [byte, c] of Object.entries(WIRE_ERRORS)) if (c === code) return Number(byte)
  return undefined
}

/** The code an ERR payload names; an unknown reason byte is reported as a protocol error. */
export function decodeErr(payload: Buffer): WireErrorCode {
  if (payload.length !== 1) throw protocolError(`an ERR frame carries 1 byte, not ${payload.length}`)
  return WIRE_ERRORS[payload[0] as keyof typeof WIRE_ERRORS] ?? 'TUN_ERR_CLUSTER_AUTH_PROTOCOL'
}

export function encodeChallenge(c: Challenge): Buffer {
  const id = nodeIdBytes(c.nodeId)
  return Buffer.concat([MAGIC, Buffer.of(c.versionMin, c.versionMax, c.flags), fixed(c.kid, KID_BYTES, 'kid'), fixed(c.nonce, NONCE_BYTES, 'nonce'), Buffer.of(id.length), id])
}

export function decodeChallenge(payload: Buffer): Challenge {
  const r = new Reader(payload, 'CHALLENGE')
  if (!r.bytes(MAGIC.length).equals(MAGIC)) throw protocolError('the peer is not an apptunnel cluster node (bad magic)')
  const versionMin = r.u8()
  const versionMax = r.u8()
  const flags = r.u8()
  const kid = r.bytes(KID_BYTES)
  const nonce = r.bytes(NONCE_BYTES)
  const nodeId = r.nodeId()
  r.end()
  if (versionMin > versionMax) throw protocolError(`CHALLENGE offers versions ${versionMin}..${versionMax}`)
  return { versionMin, versionMax, flags, kid, nonce, nodeId }
}

/** The PROOF without its MAC: this is what the transcript covers. */
export function encodeProofBody(p: Omit<Proof, 'mac'>): Buffer {
  const id = nodeIdBytes(p.nodeId)
  return Buffer.concat([Buffer.of(p.version, p.flags), fixed(p.kid, KID_BYTES, 'kid'), fixed(p.nonce, NONCE_BYTES, 'nonce'), Buffer.of(id.length), id])
}

export function encodeProof(p: Proof): Buffer {
  return Buffer.concat([encodeProofBody(p), fixed(p.mac, MAC_BYTES, 'mac')])
}

export function decodeProof(payload: Buffer): Proof {
  const r = new Reader(payload, 'PROOF')
  const version = r.u8()
  const flags = r.u8()
  const kid = r.bytes(KID_BYTES)
  const nonce = r.bytes(NONCE_BYTES)
  const nodeId = r.nodeId()
  const mac = r.bytes(MAC_BYTES)
  r.end()
  return { version, flags, kid, nonce, nodeId, mac }
}

export function decodeOk(payload: Buffer): Buffer {
  if (payload.length !== MAC_BYTES) throw protocolError(`an OK frame carries ${MAC_BYTES} bytes, not ${payload.length}`)
  return payload
}

export function protocolError(message: string): TunnelError {
  return new TunnelError('TUN_ERR_CLUSTER_AUTH_PROTOCOL', message)
}

function nodeIdBytes(id: string): Buffer {
  if (!isNodeId(id)) throw new TypeError(`node id "${id}" is not 1-64 characters of A-Z a-z 0-9 . _ -`)
  return Buffer.from(id, 'latin1')
}

function fixed(b: Buffer, n: number, what: string): Buffer {
  if (b.length !== n) throw new TypeError(`${what} must be ${n} bytes, not ${b.length}`)
  return b
}

/** Bounds-checked reads: running past the end or leaving bytes over is a protocol error. */
class Reader {
  #at = 0
  constructor(
    readonly buf: Buffer,
    readonly what: string,
  ) {}

  u8(): number {
    return this.bytes(1)[0]!
  }

  bytes(n: number): Buffer {
    if (this.#at + n > this.buf.length) throw protocolError(`${this.what} is truncated (${this.buf.length} bytes)`)
    const out = this.buf.subarray(this.#at, this.#at + n)
    this.#at += n
    return out
  }

  nodeId(): string {
    const id = this.bytes(this.u8()).toString('latin1')
    if (!isNodeId(id)) throw protocolError(`${this.what} carries an invalid node id`)
    return id
  }

  end(): void {
    if (this.#at !== this.buf.length) throw protocolError(`${this.what} has ${this.buf.length - this.#at} unexpected trailing bytes`)
  }
}

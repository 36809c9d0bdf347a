import { randomBytes } from 'node:crypto'
import type { Socket } from 'node:net'
import { TunnelError } from '../../errors/index.ts'
import type { Frame } from '../wire/frame-decoder.ts'
import {
  FLAG_FORWARD,
  FLAG_NO_SECRET,
  FRAME_CHALLENGE,
  FRAME_ERR,
  FRAME_OK,
  FRAME_PROOF,
  NONCE_BYTES,
  PROTOCOL_VERSION,
  decodeChallenge,
  decodeErr,
  decodeOk,
  encodeProof,
  protocolError,
  type Challenge,
} from './auth-messages.ts'
import { NO_KID, NO_MAC, clientMac, deriveLinkKeys, macEquals, serverMac, transcript, type ClusterKey } from './auth-transcript.ts'
import { HandshakeRun, peerRefusal, type AuthenticatedPeer, type HandshakeSideOptions } from './handshake-run.ts'

export interface ClientHandshakeOptions extends HandshakeSideOptions {
  /** the node this connection is meant to reach; another id in the CHALLENGE aborts */
  expectedPeerId?: string | undefined
  /**
   * The connection is to carry one forwarded caller connection: the server must offer it, and this
   * node proves with a key (never without one: an unauthenticated peer could claim any caller).
   */
  forward?: boolean
}

/**
 * The dialling side, on a connected socket. It sends nothing but its PROOF until the server's MAC
 * has verified, so a server without the key learns nothing it could use and receives no message.
 *
 *   connected ─▶ CHALLENGE checked ─▶ PROOF sent ─▶ OK verified ─▶ authenticated
 *                     └─ wrong node / downgrade / version ─▶ ERR sent, closed
 *   (deadline: closed, counted as a timeout — covers a server that never speaks)
 */
export function initiateHandshake(socket: Socket, options: ClientHandshakeOptions): Promise<AuthenticatedPeer> {
  return new ClientHandshake(socket, options).run()
}

class ClientHandshake extends HandshakeRun {
  readonly #options: ClientHandshakeOptions
  #state: 'await-challenge' | 'await-ok' = 'await-challenge'
  #serverId = ''
  #nonce: Buffer | undefined
  /** the key proven with, or undefined when authentication is skipped */
  #proving: ClusterKey | undefined
  #transcript: Buffer | undefined

  constructor(socket: Socket, options: ClientHandshakeOptions) {
    super(socket, options)
    this.#options = options
  }

  protected begin(): void {}

  protected onFrame(frame: Frame): void {
    if (frame.type === FRAME_ERR) {
      const code = decodeErr(frame.payload)
      if (code === 'TUN_ERR_CLUSTER_AUTH_UNKNOWN_KEY' || code === 'TUN_ERR_CLUSTER_AUTH_REQUIRED') this.#options.keys.peerSuggestsKeyChange()
      const who = this.#serverId === '' ? 'the node' : `node ${this.#serverId}`
      throw peerRefusal(code, `${who} refused the connection: ${new TunnelError(code).message}`)
    }
    if (this.#state === 'await-challenge') this.#onChallenge(frame)
    else this.#onOk(frame)
  }

  #onChallenge(frame: Frame): void {
    if (frame.type !== FRAME_CHALLENGE) throw protocolError(`expected a CHALLENGE frame, got type ${frame.type}`)
    // The server speaks again only after our PROOF; anything more now is a protocol violation.
    if (this.pendingBytes > 0) throw protocolError('the server sent data before the handshake allowed it')
    const challenge = decodeChallenge(frame.payload)
    this.#serverId = challenge.nodeId
    if (PROTOCOL_VERSION < challenge.versionMin || PROTOCOL_VERSION > challenge.versionMax) {
      throw new TunnelError('TUN_ERR_CLUSTER_AUTH_VERSION', `node ${challenge.nodeId} speaks versions ${challenge.versionMin}..${challenge.versionMax}; this node speaks ${PROTOCOL_VERSION}`)
    }
    if (challenge.nodeId === this.#options.nodeId) {
      throw new TunnelError('TUN_ERR_CLUSTER_AUTH_SELF_CONNECTION', `the address leads back to this node (${challenge.nodeId}) itself`)
    }
    const expected = this.#options.expectedPeerId
    if (expected !== undefined && challenge.nodeId !== expected) {
      throw new TunnelError('TUN_ERR_CLUSTER_AUTH_WRONG_PEER', `expected node ${expected} at this address, but node ${challenge.nodeId} answered`)
    }
    if (this.#options.nonces.has(challenge.nonce)) {
      throw new TunnelError('TUN_ERR_CLUSTER_AUTH_REFLECTION', `node ${challenge.nodeId} challenged with a nonce of this node's own`)
    }

    const keys = this.#options.keys
    const nonce = (this.#options.random ?? randomBytes)(NONCE_BYTES)
    if (keys.mode === 'no-key') throw new TunnelError('TUN_ERR_CLUSTER_KEY_UNAVAILABLE', 'this node has not loaded the cluster key yet')
    if (this.#options.forward === true) {
      if (keys.mode !== 'enabled') throw new TunnelError('TUN_ERR_CLUSTER_AUTH_REQUIRED', 'a caller connection is forwarded only over an authenticated connection, and cluster authentication is off on this node')
      if ((challenge.flags & FLAG_FORWARD) === 0) throw new TunnelError('TUN_ERR_CLUSTER_AUTH_PROTOCOL', `node ${challenge.nodeId} does not accept forwarded caller connections`)
    }
    if (keys.mode !== 'enabled') {
      this.#send(challenge, { flags: FLAG_NO_SECRET, kid: NO_KID, nonce }, undefined)
      return
    }
    if ((challenge.flags & FLAG_NO_SECRET) !== 0) {
      keys.peerSuggestsKeyChange()
      throw new TunnelError('TUN_ERR_CLUSTER_AUTH_REQUIRED', `node ${challenge.nodeId} has no cluster key, and this node requires authentication`)
    }
    // Prove with the key the server named if we accept it too (both sides mid-rotation), else with
    // our current key; a server that names a key we do not know hints that ours is stale.
    const named = keys.accepted(challenge.kid)
    if (named === undefined) keys.peerSuggestsKeyChange()
    const key = named ?? keys.current()!
    this.#send(challenge, { flags: this.#options.forward === true ? FLAG_FORWARD : 0, kid: key.kid, nonce }, key)
  }

  #send(challenge: Challenge, fields: { flags: number; kid: Buffer; nonce: Buffer }, key: ClusterKey | undefined): void {
    const body = { version: PROTOCOL_VERSION, ...fields, nodeId: this.#options.nodeId }
    this.#nonce = fields.nonce
    this.#options.nonces.add(fields.nonce)
    const t = transcript(challenge, body)
    this.#transcript = t
    this.#proving = key
    this.send(FRAME_PROOF, encodeProof({ ...body, mac: key === undefined ? NO_MAC : clientMac(key, t) }))
    this.#state = 'await-ok'
  }

  #onOk(frame: Frame): void {
    if (frame.type !== FRAME_OK) throw protocolError(`expected an OK frame, got type ${frame.type}`)
    const mac = decodeOk(frame.payload)
    const key = this.#proving
    const t = this.#transcript!
    if (key === undefined) {
      this.succeed(this.#serverId, null, deriveLinkKeys(undefined, t, 'client'))
      return
    }
    if (!macEquals(serverMac(key, t), mac)) {
      throw new TunnelError('TUN_ERR_CLUSTER_AUTH_BAD_PROOF', `node ${this.#serverId} failed to prove it holds key ${key.kidHex}`)
    }
    this.succeed(this.#serverId, key.kidHex, deriveLinkKeys(key, t, 'client'), this.#options.forward === true)
  }

  protected override settled(): void {
    if (this.#nonce !== undefined) this.#options.nonces.delete(this.#nonce)
  }

  protected timeoutError(timeoutMs: number): TunnelError {
    const stage = this.#state === 'await-challenge' ? 'it never sent its challenge' : 'it never answered the proof'
    return new TunnelError('TUN_ERR_CLUSTER_AUTH_TIMEOUT', `${this.#serverId === '' ? 'the node' : `node ${this.#serverId}`} did not complete authentication within ${timeoutMs} ms (${stage})`)
  }
}

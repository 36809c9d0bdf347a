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
  decodeErr,
  decodeProof,
  encodeChallenge,
  protocolError,
  type Challenge,
} from './auth-messages.ts'
import { NO_KID, NO_MAC, clientMac, deriveLinkKeys, macEquals, serverMac, transcript } from './auth-transcript.ts'
import { HandshakeRun, peerRefusal, type AuthenticatedPeer, type HandshakeSideOptions } from './handshake-run.ts'

export interface ServerHandshakeOptions extends HandshakeSideOptions {
  /** offer FLAG_FORWARD in the CHALLENGE: this node takes forwarded caller connections */
  acceptsForward?: boolean
}

/**
 * The accepting side. The deadline is absolute and armed at accept: an idle timer would let a peer
 * that drips a byte now and then hold the connection forever.
 *
 *   accept ─▶ CHALLENGE sent ─▶ PROOF checked ─▶ OK sent ─▶ authenticated
 *                  │                  └─ any check fails ─▶ ERR sent, closed
 *                  └─ deadline ─▶ closed (counted as a timeout)
 *
 * The PROOF checks run in this order, cheapest and least revealing first: exact lengths, version,
 * no bytes beyond the PROOF, identity and nonces (reflection), downgrade ("no secret"), key id,
 * then the MAC in constant time. The mode (enabled or not) is read again at PROOF time, so a key
 * that appeared since the CHALLENGE is enforced at once.
 */
export function acceptHandshake(socket: Socket, options: ServerHandshakeOptions): Promise<AuthenticatedPeer> {
  return new ServerHandshake(socket, options).run()
}

class ServerHandshake extends HandshakeRun {
  readonly #options: ServerHandshakeOptions
  #challenge: Challenge | undefined

  constructor(socket: Socket, options: ServerHandshakeOptions) {
    super(socket, options)
    this.#options = options
  }

  protected begin(): void {
    const keys = this.#options.keys
    if (keys.mode === 'no-key') throw new TunnelError('TUN_ERR_CLUSTER_KEY_UNAVAILABLE', 'this node has not loaded the cluster key yet')
    const current = keys.current()
    this.#challenge = {
      versionMin: PROTOCOL_VERSION,
      versionMax: PROTOCOL_VERSION,
      flags: (current === undefined ? FLAG_NO_SECRET : 0) | (this.#options.acceptsForward === true ? FLAG_FORWARD : 0),
      kid: current === undefined ? NO_KID : current.kid,
      nonce: (this.#options.random ?? randomBytes)(NONCE_BYTES),
      nodeId: this.#options.nodeId,
    }
    this.send(FRAME_CHALLENGE, encodeChallenge(this.#challenge))
  }

  protected onFrame(frame: Frame): void {
    if (frame.type === FRAME_ERR) {
      const code = decodeErr(frame.payload)
      throw peerRefusal(code, `the connecting peer gave up: ${new TunnelError(code).message}`)
    }
    if (frame.type !== FRAME_PROOF) throw protocolError(`expected a PROOF frame, got type ${frame.type}`)
    if (this.pendingBytes > 0) throw protocolError('the peer sent data before authentication completed')
    const challenge = this.#challenge!
    const proof = decodeProof(frame.payload)
    if (proof.version < challenge.versionMin || proof.version > challenge.versionMax) {
      throw new TunnelError('TUN_ERR_CLUSTER_AUTH_VERSION', `the peer chose protocol version ${proof.version}; this node speaks ${challenge.versionMin}..${challenge.versionMax}`)
    }
    if (proof.nodeId === this.#options.nodeId) {
      throw new TunnelError('TUN_ERR_CLUSTER_AUTH_REFLECTION', `the peer claims this node's own id (${proof.nodeId})`)
    }
    if (proof.nonce.equals(challenge.nonce) || this.#options.nonces.has(proof.nonce)) {
      throw new TunnelError('TUN_ERR_CLUSTER_AUTH_REFLECTION', `the peer ${proof.nodeId} answered with a nonce of this node's own`)
    }

    const keys = this.#options.keys
    if ((proof.flags & FLAG_FORWARD) !== 0 && (this.#options.acceptsForward !== true || keys.mode !== 'enabled')) {
      // A forwarded connection speaks for a caller: it needs a proven key, never the disabled mode.
      throw new TunnelError('TUN_ERR_CLUSTER_AUTH_REQUIRED', `the peer ${proof.nodeId} asked to forward a caller connection, which this node takes only over an authenticated connection`)
    }
    if (keys.mode === 'disabled-at-start' || keys.mode === 'disabled-at-run-time') {
      keys.authSkipped()
      this.send(FRAME_OK, NO_MAC)
      this.succeed(proof.nodeId, null, deriveLinkKeys(undefined, transcript(challenge, proof), 'server'))
      return
    }
    if (keys.mode !== 'enabled') throw new TunnelError('TUN_ERR_CLUSTER_KEY_UNAVAILABLE', 'this node has not loaded the cluster key yet')
    if ((proof.flags & FLAG_NO_SECRET) !== 0) {
      // Never a downgrade: a node that has a key does not talk to one that says it has none. The
      // claim may mean the operator just changed the key row, so re-read it.
      keys.peerSuggestsKeyChange()
      throw new TunnelError('TUN_ERR_CLUSTER_AUTH_REQUIRED', `the peer ${proof.nodeId} has no cluster key, and this node requires authentication`)
    }
    const key = keys.accepted(proof.kid)
    if (key === undefined) {
      keys.peerSuggestsKeyChange()
      throw new TunnelError('TUN_ERR_CLUSTER_AUTH_UNKNOWN_KEY', `the peer ${proof.nodeId} used key ${proof.kid.toString('hex')}, which this node does not accept`)
    }
    const t = transcript(challenge, proof)
    if (!macEquals(clientMac(key, t), proof.mac)) {
      throw new TunnelError('TUN_ERR_CLUSTER_AUTH_BAD_PROOF', `the peer ${proof.nodeId} failed to prove it holds key ${key.kidHex}`)
    }
    this.send(FRAME_OK, serverMac(key, t))
    this.succeed(proof.nodeId, key.kidHex, deriveLinkKeys(key, t, 'server'), (proof.flags & FLAG_FORWARD) !== 0)
  }

  protected timeoutError(timeoutMs: number): TunnelError {
    return new TunnelError('TUN_ERR_CLUSTER_AUTH_TIMEOUT', `the connecting peer did not complete authentication within ${timeoutMs} ms`)
  }
}

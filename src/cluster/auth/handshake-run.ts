import type { Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import { TunnelError, isTunnelError } from '../../errors/index.ts'
import type { AuthOutcomeRecorder } from '../auth-stats.ts'
import { FrameDecoder, encodeFrame, type Frame } from '../wire/frame-decoder.ts'
import type { LinkKeys } from './auth-transcript.ts'
import type { HandshakeKeys } from './handshake-keys.ts'
import type { NonceRegistry } from './nonce-registry.ts'
import { AUTH_FRAME_FORMAT, FRAME_ERR, MAX_PRE_AUTH_BYTES, protocolError, wireByteOf } from './auth-messages.ts'

/** A connection that came through the handshake; the bus takes the socket from here. */
export interface AuthenticatedPeer {
  peerId: string
  /** hex id of the key both sides proved, or null when authentication was skipped (disabled) */
  kid: string | null
  /** from the start of the handshake to its end, in (fractional) milliseconds */
  timeToAuthMs: number
  /** bytes that arrived behind the last handshake frame: the first bus frames */
  leftover: Buffer
  /** the connection carries a forwarded caller connection (FLAG_FORWARD in the PROOF), not a bus link */
  forward: boolean
  /** this link's bus MAC keys, derived from the handshake transcript */
  linkKeys: LinkKeys
}

export interface HandshakeRunOptions {
  /** absolute deadline for the whole handshake, armed at its start */
  timeoutMs: number
  stats: AuthOutcomeRecorder
}

/** What either side of a handshake needs about this node. */
export interface HandshakeSideOptions extends HandshakeRunOptions {
  nodeId: string
  keys: HandshakeKeys
  /** this node's client nonces in flight: the client side registers them, the server side refuses them (reflection) */
  nonces: NonceRegistry
  random?: (bytes: number) => Buffer
}

// After an ERR frame the sender closes; a peer that never closes its side is cut after this.
const ERR_LINGER_MS = 1000

/**
 * One handshake over one socket: frames in, one outcome out, exactly one statistic recorded, and
 * every listener and timer gone when it settles. On success the socket is paused and handed over
 * with the bytes that followed; on failure it is closed (after an ERR frame when the peer is owed
 * a reason — never after a timeout, which just closes).
 */
export abstract class HandshakeRun {
  protected readonly socket: Socket
  readonly #options: HandshakeRunOptions
  readonly #decoder = new FrameDecoder(AUTH_FRAME_FORMAT)
  readonly #startedAt = performance.now()
  #consumedBytes = 0
  #timer: NodeJS.Timeout | undefined
  #settled = false
  #resolve!: (peer: AuthenticatedPeer) => void
  #reject!: (err: TunnelError) => void

  constructor(socket: Socket, options: HandshakeRunOptions) {
    this.socket = socket
    this.#options = options
  }

  run(): Promise<AuthenticatedPeer> {
    return new Promise<AuthenticatedPeer>((resolve, reject) => {
      this.#resolve = resolve
      this.#reject = reject
      if (this.socket.destroyed) {
        this.fail(new TunnelError('TUN_ERR_CLUSTER_CONNECTION_LOST', 'the connection closed before authentication started'))
        return
      }
      this.#timer = setTimeout(() => this.fail(this.timeoutError(this.#options.timeoutMs)), this.#options.timeoutMs)
      this.socket.on('data', this.#onData)
      this.socket.on('end', this.#onEnd)
      this.socket.on('close', this.#onClose)
      this.socket.on('error', this.#onError)
      this.#guard(() => this.begin())
    })
  }

  protected abstract begin(): void
  protected abstract onFrame(frame: Frame): void
  protected abstract timeoutError(timeoutMs: number): TunnelError
  /** called once when the run settles either way (release nonces and the like) */
  protected settled(): void {}

  protected get settledAlready(): boolean {
    return this.#settled
  }

  /** Bytes received and not yet decoded into a frame. */
  protected get pendingBytes(): number {
    return this.#decoder.bufferedBytes
  }

  protected send(type: number, payload: Buffer): void {
    this.socket.write(encodeFrame(AUTH_FRAME_FORMAT, type, payload))
  }

  protected succeed(peerId: string, kid: string | null, linkKeys: LinkKeys, forward = false): void {
    if (this.#settled) return
    const timeToAuthMs = performance.now() - this.#startedAt
    this.#finish()
    this.socket.pause()
    if (kid === null) this.#options.stats.skippedNoSecret()
    else this.#options.stats.success(timeToAuthMs)
    this.#resolve({ peerId, kid, timeToAuthMs, leftover: this.#decoder.takeRemainder(), linkKeys, forward })
  }

  /**
   * Ends the run with `err`. The peer gets an ERR frame when the code has a wire byte, unless the
   * error came from the peer itself (`details.fromPeer`) or is a timeout.
   */
  protected fail(err: TunnelError): void {
    if (this.#settled) return
    this.#finish()
    const timedOut = err.code === 'TUN_ERR_CLUSTER_AUTH_TIMEOUT'
    if (timedOut) this.#options.stats.failedByTimeout()
    else this.#options.stats.failed()
    // Errors may still surface while the socket closes; nobody else listens yet.
    this.socket.on('error', ignore)
    const byte = timedOut || err.details['fromPeer'] === true ? undefined : wireByteOf(err.code)
    if (byte === undefined || this.socket.destroyed || !this.socket.writable) {
      this.socket.destroy()
    } else {
      const linger = setTimeout(() => this.socket.destroy(), ERR_LINGER_MS)
      linger.unref()
      this.socket.once('close', () => clearTimeout(linger))
      this.socket.end(encodeFrame(AUTH_FRAME_FORMAT, FRAME_ERR, Buffer.of(byte)))
    }
    this.#reject(err)
  }

  #finish(): void {
    this.#settled = true
    clearTimeout(this.#timer)
    this.socket.off('data', this.#onData)
    this.socket.off('end', this.#onEnd)
    this.socket.off('close', this.#onClose)
    this.socket.off('error', this.#onError)
    this.settled()
  }

  #guard(step: () => void): void {
    try {
      step()
    } catch (err) {
      this.fail(isTunnelError(err) ? err : new TunnelError('TUN_ERR_INTERNAL', `cluster handshake failed: ${String(err)}`, { cause: err }))
    }
  }

  readonly #onData = (chunk: Buffer): void => {
    this.#guard(() => {
      this.#decoder.push(chunk)
      for (;;) {
        if (this.#settled) return
        const frame = this.#decoder.next()
        if (frame === undefined) break
        this.#consumedBytes += AUTH_FRAME_FORMAT.lengthBytes + 1 + frame.payload.length
        this.onFrame(frame)
      }
      if (!this.#settled && this.#consumedBytes + this.#decoder.bufferedBytes > MAX_PRE_AUTH_BYTES) {
        throw protocolError(`the peer sent more than ${MAX_PRE_AUTH_BYTES} bytes before authentication completed`)
      }
    })
  }

  readonly #onEnd = (): void => {
    const partial = this.#decoder.bufferedBytes
    this.fail(
      new TunnelError(
        'TUN_ERR_CLUSTER_CONNECTION_LOST',
        `the peer closed the connection during authentication${partial > 0 ? ` (${partial} bytes of an unfinished frame)` : ''}`,
      ),
    )
  }

  readonly #onClose = (): void => {
    this.fail(new TunnelError('TUN_ERR_CLUSTER_CONNECTION_LOST', 'the connection closed during authentication'))
  }

  readonly #onError = (err: Error): void => {
    this.fail(new TunnelError('TUN_ERR_CLUSTER_CONNECTION_LOST', `the connection failed during authentication: ${err.message}`, { cause: err }))
  }
}

function ignore(): void {}

/** An error the peer reported in an ERR frame: never answered with another ERR. */
export function peerRefusal(code: TunnelError['code'], message: string): TunnelError {
  return new TunnelError(code, message, { details: { fromPeer: true } })
}

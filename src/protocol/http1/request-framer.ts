import { TunnelError } from '../../errors/index.ts'
import type { FieldNameSet } from './field-name-set.ts'
import type { Http1Limits } from './http1-limits.ts'
import { resolveHttp1Limits } from './http1-limits.ts'
import type { RequestHead } from './request-head.ts'
import { FramedBodyReader } from './framed-body-reader.ts'
import { framingError } from './framing-error.ts'
import { HeadScanner } from './head-scanner.ts'
import { parseRequestHead } from './parse-request-head.ts'
import { FramerGuard } from './framer-guard.ts'

export interface RequestFramerCallbacks {
  onHead(head: RequestHead): void
  /**
   * Body bytes exactly as received (chunked framing included), as slices of the pushed chunks;
   * `transient`: of a chunk pushed as transient, overwritten once push() returns.
   */
  onBody(chunk: Buffer, transient: boolean): void
  onMessageEnd(): void
}

export type RequestFramerState = 'head' | 'body' | 'awaiting-upgrade' | 'upgraded' | 'dead'

/** Bytes a client may send after an upgrade request before the upstream has answered it. */
export const MAX_BYTES_AWAITING_UPGRADE = 64 * 1024

const HEAD = 0
const BODY = 1
const AWAITING_UPGRADE = 2
const UPGRADED = 3
const DEAD = 4

const STATE_NAMES: readonly RequestFramerState[] = ['head', 'body', 'awaiting-upgrade', 'upgraded', 'dead']

/**
 * Splits a client's byte stream into request heads and bodies, strictly: anything two HTTP
 * implementations could frame differently is refused (RFC 9112 §11.2, request smuggling).
 * Purely synchronous; callbacks run inside push() and must not call back into the framer.
 */
export class RequestFramer {
  private readonly callbacks: RequestFramerCallbacks
  private readonly scanner: HeadScanner
  private readonly body: FramedBodyReader
  private readonly onBody: (slice: Buffer) => void
  private phase = HEAD
  private upgradeAfterMessage = false
  private held: Buffer[] = []
  /** the chunk being parsed is overwritten after push() returns: what is held is copied */
  private transient = false
  private heldBytes = 0
  private readonly guard = new FramerGuard('RequestFramer')
  private readonly flagFields: FieldNameSet | undefined

  /** `flagFields`: names the owner asks each head about (RequestHead.hasFieldIn), looked for while parsing. */
  constructor(callbacks: RequestFramerCallbacks, limits?: Partial<Http1Limits>, flagFields?: FieldNameSet) {
    this.callbacks = callbacks
    this.flagFields = flagFields
    const resolved = resolveHttp1Limits(limits)
    this.scanner = new HeadScanner('request', resolved)
    this.body = new FramedBodyReader('request', resolved)
    this.onBody = (slice) => this.callbacks.onBody(slice, this.transient)
  }

  get state(): RequestFramerState {
    return STATE_NAMES[this.phase]!
  }

  /** Bytes of an incomplete head held so far; 0 between messages. */
  get bufferedHeadBytes(): number {
    return this.phase === HEAD ? this.scanner.bufferedBytes : 0
  }

  /**
   * Parses `chunk`, calling back synchronously. Body slices handed to onBody are views of it. Bytes
   * held during an upgrade reference it too, so it must not be modified afterwards, unless
   * `transient` says it will be (a socket's reused read buffer): then they are copied.
   */
  push(chunk: Buffer, transient = false): void {
    this.checkUsable('push')
    if (this.phase === UPGRADED) throw new TunnelError('TUN_ERR_INTERNAL', 'push() after upgradeAccepted(): the connection carries raw bytes now')
    this.transient = transient
    try {
      this.guarded(() => this.run(chunk))
    } finally {
      this.transient = false
    }
  }

  /** Ends HTTP on this connection; returns the bytes that arrived after the upgrade request, to relay raw. */
  upgradeAccepted(): Buffer {
    this.checkUsable('upgradeAccepted')
    if (this.phase !== AWAITING_UPGRADE) throw new TunnelError('TUN_ERR_INTERNAL', `upgradeAccepted() in state '${this.state}'`)
    const held = this.held
    this.held = []
    this.heldBytes = 0
    this.phase = UPGRADED
    return held.length === 1 ? held[0]! : Buffer.concat(held)
  }

  /** The upstream answered the upgrade request without switching: bytes held since are requests again. */
  upgradeDeclined(): void {
    this.checkUsable('upgradeDeclined')
    if (this.phase !== AWAITING_UPGRADE) throw new TunnelError('TUN_ERR_INTERNAL', `upgradeDeclined() in state '${this.state}'`)
    const held = this.held
    this.held = []
    this.heldBytes = 0
    this.phase = HEAD
    // A held request may itself ask to upgrade; run() then holds whatever follows it again.
    this.guarded(() => {
      for (const chunk of held) this.run(chunk)
    })
  }

  private checkUsable(method: string): void {
    this.guard.check(method)
  }

  private guarded(work: () => void): void {
    this.guard.run(work, () => {
      this.phase = DEAD
      this.held = []
    })
  }

  private run(chunk: Buffer): void {
    const end = chunk.length
    let pos = 0
    while (pos < end) {
      switch (this.phase) {
        case HEAD: {
          const text = this.scanner.scan(chunk, pos)
          if (text === undefined) return
          pos = this.scanner.endOffset
          const head = parseRequestHead(this.scanner.headBytes, this.scanner.headOffset, text, this.flagFields)
          this.scanner.releaseHead()
          this.startMessage(head)
          break
        }
        case BODY:
          pos = this.body.feed(chunk, pos, this.onBody)
          if (this.body.done) this.endMessage()
          break
        case AWAITING_UPGRADE:
          this.hold(pos === 0 ? chunk : chunk.subarray(pos))
          return
        default:
          throw new TunnelError('TUN_ERR_INTERNAL', `RequestFramer cannot take bytes in state '${this.state}'`)
      }
    }
  }

  private startMessage(head: RequestHead): void {
    this.upgradeAfterMessage = head.upgrade
    if (this.body.start(head.body)) this.phase = BODY
    this.callbacks.onHead(head)
    if (this.phase === HEAD) this.endMessage()
  }

  private endMessage(): void {
    this.phase = this.upgradeAfterMessage ? AWAITING_UPGRADE : HEAD
    this.callbacks.onMessageEnd()
  }

  private hold(chunk: Buffer): void {
    this.heldBytes += chunk.length
    if (this.heldBytes > MAX_BYTES_AWAITING_UPGRADE) {
      throw framingError('request', 'TUN_ERR_HTTP_BAD_REQUEST', `more than ${MAX_BYTES_AWAITING_UPGRADE} bytes sent before the upgrade was answered`)
    }
    this.held.push(this.transient ? Buffer.from(chunk) : chunk)
  }
}

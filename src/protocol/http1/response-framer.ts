import { TunnelError } from '../../errors/index.ts'
import type { Http1Limits } from './http1-limits.ts'
import { resolveHttp1Limits } from './http1-limits.ts'
import type { ResponseHead } from './response-head.ts'
import { FramedBodyReader } from './framed-body-reader.ts'
import { HeadScanner } from './head-scanner.ts'
import { parseResponseHead } from './parse-response-head.ts'
import { FramerGuard } from './framer-guard.ts'

export interface ResponseFramerCallbacks {
  /**
   * Also called for interim (1xx) heads, which have no body and no onMessageEnd. `raw` is the head
   * exactly as received (start line through the blank line), so a relay can pass on a head only
   * once it is known to be whole and well formed.
   */
  onHead(head: ResponseHead, raw: Buffer): void
  onBody(chunk: Buffer): void
  onMessageEnd(): void
  /** After a 101 head (or a 2xx answer to CONNECT): `rest` is what followed the head in that chunk; the framer is done. */
  onUpgrade(rest: Buffer): void
}

export type ResponseFramerState = 'head' | 'body' | 'upgraded' | 'closed' | 'dead'

const HEAD = 0
const BODY = 1
const UNTIL_CLOSE_BODY = 2
const UPGRADED = 3
const CLOSED = 4
const DEAD = 5

const STATE_NAMES: readonly ResponseFramerState[] = ['head', 'body', 'body', 'upgraded', 'closed', 'dead']

/**
 * Splits an upstream's byte stream into responses, pairing each final response with the method of
 * the request it answers (a HEAD response has no body whatever its headers say).
 * Purely synchronous; callbacks run inside push()/end() and must not call back into the framer.
 */
export class ResponseFramer {
  private readonly callbacks: ResponseFramerCallbacks
  private readonly scanner: HeadScanner
  private readonly body: FramedBodyReader
  private readonly onBody: (slice: Buffer) => void
  private readonly methods: string[] = []
  private methodsHead = 0
  private phase = HEAD
  private readonly guard = new FramerGuard('ResponseFramer')

  constructor(callbacks: ResponseFramerCallbacks, limits?: Partial<Http1Limits>) {
    this.callbacks = callbacks
    const resolved = resolveHttp1Limits(limits)
    this.scanner = new HeadScanner('response', resolved)
    this.body = new FramedBodyReader('response', resolved)
    this.onBody = (slice) => this.callbacks.onBody(slice)
  }

  get state(): ResponseFramerState {
    return STATE_NAMES[this.phase]!
  }

  get pendingRequests(): number {
    return this.methods.length - this.methodsHead
  }

  get inMessage(): boolean {
    return this.phase === BODY || this.phase === UNTIL_CLOSE_BODY
  }

  /** Bytes of an incomplete head held so far. */
  get bufferedHeadBytes(): number {
    return this.phase === HEAD ? this.scanner.bufferedBytes : 0
  }

  /** Records the method of a request sent upstream, in sending order. */
  expect(method: string): void {
    this.methods.push(method)
  }

  /** Parses `chunk`, calling back synchronously; body slices reference the chunk, so it must not be modified afterwards. */
  push(chunk: Buffer): void {
    this.checkUsable('push')
    if (this.phase === UPGRADED || this.phase === CLOSED) {
      throw new TunnelError('TUN_ERR_INTERNAL', `ResponseFramer.push() in state '${this.state}'`)
    }
    this.guarded(() => this.run(chunk))
  }

  /** The upstream closed the connection. */
  end(): void {
    this.checkUsable('end')
    this.guarded(() => {
      switch (this.phase) {
        case HEAD:
          if (this.scanner.bufferedBytes > 0) throw this.bad('connection closed in the middle of a response head')
          break
        case BODY:
          throw this.bad(this.body.describeUnfinished())
        case UNTIL_CLOSE_BODY:
          this.phase = CLOSED
          this.callbacks.onMessageEnd()
          return
      }
      this.phase = CLOSED
    })
  }

  private checkUsable(method: string): void {
    this.guard.check(method)
  }

  private guarded(work: () => void): void {
    this.guard.run(work, () => {
      this.phase = DEAD
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
          if (this.startMessage(text)) {
            this.callbacks.onUpgrade(chunk.subarray(pos))
            return
          }
          break
        }
        case BODY:
          pos = this.body.feed(chunk, pos, this.onBody)
          if (this.body.done) this.endMessage()
          break
        case UNTIL_CLOSE_BODY:
          this.callbacks.onBody(pos === 0 ? chunk : chunk.subarray(pos))
          return
        default:
          throw new TunnelError('TUN_ERR_INTERNAL', `ResponseFramer cannot take bytes in state '${this.state}'`)
      }
    }
  }

  /** Returns true when the head hands the connection over to raw bytes. */
  private startMessage(text: string): boolean {
    const method = this.methodsHead < this.methods.length ? this.methods[this.methodsHead]! : 'GET'
    const headBytes = this.scanner.headBytes
    const headOffset = this.scanner.headOffset
    const head = parseResponseHead(headBytes, headOffset, text, method)
    // A view, not a copy: a head gathered across chunks lives in a buffer the scanner lets go of.
    const raw = headBytes.subarray(headOffset, headOffset + text.length)
    this.scanner.releaseHead()
    const status = head.statusCode
    if (status < 200 && status !== 101) {
      this.callbacks.onHead(head, raw)
      return false
    }
    this.consumeMethod()
    if (status === 101 || (method === 'CONNECT' && status < 300)) {
      this.phase = UPGRADED
      this.callbacks.onHead(head, raw)
      return true
    }
    if (this.body.start(head.body)) this.phase = BODY
    else if (head.body.kind === 'until-close') this.phase = UNTIL_CLOSE_BODY
    this.callbacks.onHead(head, raw)
    if (this.phase === HEAD) this.endMessage()
    return false
  }

  private consumeMethod(): void {
    if (this.methodsHead >= this.methods.length) return
    this.methodsHead++
    // Compact now and then so a long keep-alive connection does not grow the array forever.
    if (this.methodsHead > 64 && this.methodsHead * 2 > this.methods.length) {
      this.methods.splice(0, this.methodsHead)
      this.methodsHead = 0
    }
  }

  private endMessage(): void {
    this.phase = HEAD
    this.callbacks.onMessageEnd()
  }

  private bad(message: string): TunnelError {
    return new TunnelError('TUN_ERR_UPSTREAM_BAD_RESPONSE', message)
  }
}

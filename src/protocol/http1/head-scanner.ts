import type { Http1Limits } from './http1-limits.ts'
import type { FramerSide } from './framing-error.ts'
import { describeByte, framingError } from './framing-error.ts'
import { TOKEN_CHARS } from './token-chars.ts'

const CR = 13
const LF = 10
const H = 0x48
const EMPTY = Buffer.alloc(0)

/**
 * RFC 9112 §2.2: some clients send a CRLF after a POST body, so at least one empty line before a
 * start line should be ignored. More than a few is not a client quirk but garbage.
 */
export const MAX_LEADING_EMPTY_LINES = 4

/**
 * Finds where a head ends across any number of chunks and enforces the size limits while the head
 * is still incomplete, so a slow or hostile peer is cut off before the blank line ever arrives.
 * A head found inside one chunk is decoded straight from it (the only copy); otherwise the head's
 * bytes, and only those, are gathered in `pending`.
 */
export class HeadScanner {
  /** Offset in the last scanned chunk just past the head's blank line, valid after scan() returns a head. */
  endOffset = 0
  /**
   * Where the returned head's bytes are: head.charCodeAt(i) === headBytes[headOffset + i]. Parsers
   * validate on these bytes (faster to walk than the string) and slice names and values from the string.
   */
  headBytes: Buffer = EMPTY
  headOffset = 0

  private readonly side: FramerSide
  private readonly limits: Http1Limits
  private pending: Buffer | null = null
  private pendingLength = 0
  /** Offset within the head of the first byte of the line being scanned. */
  private lineStart = 0
  /** Complete lines so far, the start line included. */
  private lineCount = 0
  private pendingEndsWithCR = false
  private leadingEmptyLines = 0

  constructor(side: FramerSide, limits: Http1Limits) {
    this.side = side
    this.limits = limits
  }

  /** Drops the references to the last head's bytes once parsed, so a large chunk is not pinned. */
  releaseHead(): void {
    this.headBytes = EMPTY
  }

  get bufferedBytes(): number {
    return this.pendingLength
  }

  /** Returns the head (start line through the blank line, latin1) or undefined once the chunk is exhausted. */
  scan(chunk: Buffer, from: number): string | undefined {
    const end = chunk.length
    let segmentStart = from
    let pos = from
    if (this.pendingLength === 0 && pos < end) this.checkFirstByte(chunk[pos]!)
    while (pos < end) {
      const lf = chunk.indexOf(LF, pos)
      if (lf === -1) break
      const crBefore = lf > segmentStart ? chunk[lf - 1] === CR : this.pendingLength > 0 && this.pendingEndsWithCR
      if (!crBefore) throw framingError(this.side, 'TUN_ERR_HTTP_BAD_REQUEST', `bare LF in ${this.lineName()}`)
      const headLength = this.pendingLength + (lf + 1 - segmentStart)
      if (headLength - this.lineStart === 2) {
        if (this.lineCount === 0) {
          if (++this.leadingEmptyLines > MAX_LEADING_EMPTY_LINES) {
            throw framingError(this.side, 'TUN_ERR_HTTP_BAD_REQUEST', `more than ${MAX_LEADING_EMPTY_LINES} empty lines before the ${this.startLineName()}`)
          }
          // The held CR, if any, belonged to this empty line: nothing of the head is buffered yet.
          this.pendingLength = 0
          this.pendingEndsWithCR = false
          segmentStart = pos = lf + 1
          if (pos < end) this.checkFirstByte(chunk[pos]!)
          continue
        }
        if (headLength > this.limits.maxHeadBytes) throw this.headTooLarge()
        let head: string
        if (this.pendingLength === 0) {
          head = chunk.toString('latin1', segmentStart, lf + 1)
          this.headBytes = chunk
          this.headOffset = segmentStart
        } else {
          this.append(chunk, segmentStart, lf + 1)
          head = this.pending!.toString('latin1', 0, this.pendingLength)
          this.headBytes = this.pending!
          this.headOffset = 0
        }
        this.endOffset = lf + 1
        this.reset()
        return head
      }
      if (this.lineCount === 0 && headLength - 2 > this.limits.maxStartLineBytes) throw this.startLineTooLong()
      if (headLength > this.limits.maxHeadBytes) throw this.headTooLarge()
      if (++this.lineCount - 1 > this.limits.maxHeaderCount) {
        throw framingError(this.side, 'TUN_ERR_HTTP_HEADERS_TOO_LARGE', `more than ${this.limits.maxHeaderCount} header fields`)
      }
      this.lineStart = headLength
      pos = lf + 1
    }
    if (segmentStart < end) {
      const length = this.pendingLength + (end - segmentStart)
      const endsWithCR = chunk[end - 1] === CR
      // A trailing CR may be the start of the line's CRLF, so it does not count against the start line yet.
      if (this.lineCount === 0 && length - (endsWithCR ? 1 : 0) > this.limits.maxStartLineBytes) throw this.startLineTooLong()
      if (length > this.limits.maxHeadBytes) throw this.headTooLarge()
      this.append(chunk, segmentStart, end)
      this.pendingEndsWithCR = endsWithCR
    }
    return undefined
  }

  private reset(): void {
    // Released rather than kept: an idle keep-alive connection should not pin a head-sized buffer.
    this.pending = null
    this.pendingLength = 0
    this.lineStart = 0
    this.lineCount = 0
    this.pendingEndsWithCR = false
    this.leadingEmptyLines = 0
  }

  /** Rejects early what can never become a start line, e.g. a TLS ClientHello sent to a plain-HTTP port. */
  private checkFirstByte(c: number): void {
    if (c === CR || c === LF) return
    if (this.side === 'request' ? TOKEN_CHARS[c] !== 1 : c !== H) {
      throw framingError(this.side, 'TUN_ERR_HTTP_BAD_REQUEST', `${this.startLineName()} starts with ${describeByte(c)}`)
    }
  }

  private append(chunk: Buffer, start: number, end: number): void {
    const length = this.pendingLength + (end - start)
    if (this.pending === null || this.pending.length < length) {
      const grown = Buffer.allocUnsafe(Math.min(Math.max(length, this.pendingLength * 2, 512), this.limits.maxHeadBytes))
      if (this.pending !== null) this.pending.copy(grown, 0, 0, this.pendingLength)
      this.pending = grown
    }
    chunk.copy(this.pending, this.pendingLength, start, end)
    this.pendingLength = length
  }

  private startLineName(): string {
    return this.side === 'request' ? 'request line' : 'status line'
  }

  private lineName(): string {
    return this.lineCount === 0 ? this.startLineName() : `header line ${this.lineCount}`
  }

  private startLineTooLong(): Error {
    return framingError(this.side, 'TUN_ERR_HTTP_URI_TOO_LONG', `${this.startLineName()} longer than ${this.limits.maxStartLineBytes} bytes`)
  }

  private headTooLarge(): Error {
    return framingError(this.side, 'TUN_ERR_HTTP_HEADERS_TOO_LARGE', `head larger than ${this.limits.maxHeadBytes} bytes`)
  }
}

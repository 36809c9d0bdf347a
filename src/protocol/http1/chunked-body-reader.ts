import type { Http1Limits } from './http1-limits.ts'
import type { FramerSide, RequestFramingCode } from './framing-error.ts'
import { describeByte, framingError } from './framing-error.ts'
import { TOKEN_CHARS } from './token-chars.ts'

const CR = 13
const LF = 10
const HTAB = 9
const SP = 32
const DQUOTE = 0x22
const SEMICOLON = 0x3b
const EQUALS = 0x3d
const BACKSLASH = 0x5c
const COLON = 0x3a
const DEL = 0x7f

const MAX_SIZE_DIGITS = 16

// States. The chunk-ext grammar (RFC 9112 §7.1.1) is
//   *( BWS ";" BWS ext-name [ BWS "=" BWS ( token / quoted-string ) ] )
const SIZE_START = 0
const SIZE = 1
const EXT_BEFORE_SEMICOLON = 2
const EXT_BEFORE_NAME = 3
const EXT_NAME = 4
const EXT_AFTER_NAME = 5
const EXT_BEFORE_VALUE = 6
const EXT_TOKEN_VALUE = 7
const EXT_QUOTED_VALUE = 8
const EXT_QUOTED_ESCAPE = 9
const EXT_AFTER_QUOTED = 10
const SIZE_LF = 11
const DATA = 12
const DATA_CR = 13
const DATA_LF = 14
const TRAILER_LINE_START = 15
const TRAILER_NAME = 16
const TRAILER_VALUE = 17
const TRAILER_LINE_LF = 18
const FINAL_LF = 19
const DONE = 20

const HEX_VALUES: Int8Array = (() => {
  const table = new Int8Array(256).fill(-1)
  for (let i = 0; i < 10; i++) table[0x30 + i] = i
  for (let i = 0; i < 6; i++) {
    table[0x41 + i] = 10 + i
    table[0x61 + i] = 10 + i
  }
  return table
})()

// A trailer that restates framing or routing could be merged into the head by the upstream and
// reinterpreted after the ingress has already framed and routed the request.
const FORBIDDEN_REQUEST_TRAILERS = new Set(['content-length', 'transfer-encoding', 'host'])
const LONGEST_FORBIDDEN_TRAILER = 17

/**
 * Validates a chunked body byte by byte (data sections are skipped in one step) without copying:
 * the framer forwards the consumed range verbatim, framing bytes included.
 */
export class ChunkedBodyReader {
  private readonly side: FramerSide
  private readonly limits: Http1Limits
  private state = SIZE_START
  private size = 0
  private sizeDigits = 0
  private remaining = 0
  private extensionBytes = 0
  private trailerBytes = 0
  private trailerLines = 0
  private trailerName = ''

  constructor(side: FramerSide, limits: Http1Limits) {
    this.side = side
    this.limits = limits
  }

  get done(): boolean {
    return this.state === DONE
  }

  reset(): void {
    this.state = SIZE_START
    this.trailerBytes = 0
    this.trailerLines = 0
  }

  /** Consumes chunk[pos..] up to the end of the body at most and returns the offset reached. */
  feed(chunk: Buffer, pos: number): number {
    const end = chunk.length
    while (pos < end) {
      const state = this.state
      if (state === DATA) {
        const n = Math.min(this.remaining, end - pos)
        pos += n
        this.remaining -= n
        if (this.remaining === 0) this.state = DATA_CR
        continue
      }
      const c = chunk[pos++]!
      if (state >= TRAILER_LINE_START) {
        this.trailerByte(c)
        if (this.state === DONE) return pos
      } else if (state >= EXT_BEFORE_SEMICOLON && state <= EXT_AFTER_QUOTED) {
        this.extensionByte(state, c)
      } else {
        this.sizeLineByte(state, c)
      }
    }
    return pos
  }

  private sizeLineByte(state: number, c: number): void {
    switch (state) {
      case SIZE_START: {
        const digit = HEX_VALUES[c]!
        if (digit < 0) throw this.badSizeStart(c)
        this.size = digit
        this.sizeDigits = 1
        this.state = SIZE
        return
      }
      case SIZE: {
        const digit = HEX_VALUES[c]!
        if (digit >= 0) {
          if (++this.sizeDigits > MAX_SIZE_DIGITS) throw this.bad(`chunk size has more than ${MAX_SIZE_DIGITS} hex digits`)
          this.size = this.size * 16 + digit
          if (this.size > Number.MAX_SAFE_INTEGER) throw this.bad('chunk size exceeds 2^53 - 1')
          return
        }
        if (c === CR) {
          this.state = SIZE_LF
          return
        }
        if (c === SEMICOLON || c === SP || c === HTAB) {
          this.extensionBytes = 0
          this.countExtensionByte()
          this.state = c === SEMICOLON ? EXT_BEFORE_NAME : EXT_BEFORE_SEMICOLON
          return
        }
        throw this.bad(c === LF ? 'bare LF in chunk size line' : `invalid character ${describeByte(c)} in chunk size`)
      }
      case SIZE_LF:
        if (c !== LF) throw this.bad('bare CR in chunk size line')
        if (this.size === 0) {
          this.state = TRAILER_LINE_START
        } else {
          this.remaining = this.size
          this.state = DATA
        }
        return
      case DATA_CR:
        if (c !== CR) throw this.bad(`missing CRLF after chunk data (found ${describeByte(c)})`)
        this.state = DATA_LF
        return
      case DATA_LF:
        if (c !== LF) throw this.bad('missing CRLF after chunk data (bare CR)')
        this.state = SIZE_START
        return
    }
  }

  private extensionByte(state: number, c: number): void {
    if (c === CR) {
      // Only complete names and values may end the line: no trailing BWS, no dangling '=' or ';'.
      if (state === EXT_NAME || state === EXT_TOKEN_VALUE || state === EXT_AFTER_QUOTED) {
        this.state = SIZE_LF
        return
      }
      throw this.bad(state === EXT_QUOTED_VALUE || state === EXT_QUOTED_ESCAPE
        ? 'unterminated quoted string in chunk extension'
        : 'incomplete chunk extension (ends in whitespace, ";" or "=")')
    }
    this.countExtensionByte()
    const ows = c === SP || c === HTAB
    switch (state) {
      case EXT_BEFORE_SEMICOLON:
        if (ows) return
        if (c === SEMICOLON) {
          this.state = EXT_BEFORE_NAME
          return
        }
        break
      case EXT_BEFORE_NAME:
        if (ows) return
        if (TOKEN_CHARS[c] === 1) {
          this.state = EXT_NAME
          return
        }
        break
      case EXT_NAME:
      case EXT_AFTER_NAME:
        if (state === EXT_NAME && TOKEN_CHARS[c] === 1) return
        if (ows) {
          this.state = EXT_AFTER_NAME
          return
        }
        if (c === EQUALS) {
          this.state = EXT_BEFORE_VALUE
          return
        }
        if (c === SEMICOLON) {
          this.state = EXT_BEFORE_NAME
          return
        }
        break
      case EXT_BEFORE_VALUE:
        if (ows) return
        if (TOKEN_CHARS[c] === 1) {
          this.state = EXT_TOKEN_VALUE
          return
        }
        if (c === DQUOTE) {
          this.state = EXT_QUOTED_VALUE
          return
        }
        break
      case EXT_TOKEN_VALUE:
      case EXT_AFTER_QUOTED:
        if (state === EXT_TOKEN_VALUE && TOKEN_CHARS[c] === 1) return
        if (ows) {
          this.state = EXT_BEFORE_SEMICOLON
          return
        }
        if (c === SEMICOLON) {
          this.state = EXT_BEFORE_NAME
          return
        }
        break
      case EXT_QUOTED_VALUE:
        if (c === DQUOTE) {
          this.state = EXT_AFTER_QUOTED
          return
        }
        if (c === BACKSLASH) {
          this.state = EXT_QUOTED_ESCAPE
          return
        }
        // qdtext: HTAB / SP / VCHAR except '"' and '\' / obs-text
        if (c === HTAB || (c >= SP && c !== DEL)) return
        break
      case EXT_QUOTED_ESCAPE:
        if (c === HTAB || (c >= SP && c !== DEL)) {
          this.state = EXT_QUOTED_VALUE
          return
        }
        break
    }
    throw this.bad(c === LF ? 'bare LF in chunk size line' : `invalid character ${describeByte(c)} in chunk extension`)
  }

  private countExtensionByte(): void {
    if (++this.extensionBytes > this.limits.maxChunkExtensionBytes) {
      throw this.bad(`chunk extension longer than ${this.limits.maxChunkExtensionBytes} bytes`)
    }
  }

  private trailerByte(c: number): void {
    if (++this.trailerBytes > this.limits.maxTrailerBytes) {
      throw this.fail('TUN_ERR_HTTP_HEADERS_TOO_LARGE', `trailer section larger than ${this.limits.maxTrailerBytes} bytes`)
    }
    switch (this.state) {
      case TRAILER_LINE_START:
        if (c === CR) {
          this.state = FINAL_LF
          return
        }
        this.trailerLines++
        if (this.trailerLines > this.limits.maxHeaderCount) {
          throw this.fail('TUN_ERR_HTTP_HEADERS_TOO_LARGE', `more than ${this.limits.maxHeaderCount} trailer fields`)
        }
        if (TOKEN_CHARS[c] === 1) {
          this.trailerName = String.fromCharCode(c | (c >= 0x41 && c <= 0x5a ? 0x20 : 0))
          this.state = TRAILER_NAME
          return
        }
        if (c === SP || c === HTAB) throw this.bad(`obs-fold (line starting with whitespace) in trailer line ${this.trailerLines}`)
        if (c === COLON) throw this.bad(`empty field name in trailer line ${this.trailerLines}`)
        throw this.bad(c === LF ? `bare LF in trailer line ${this.trailerLines}` : `invalid character ${describeByte(c)} in field name of trailer line ${this.trailerLines}`)
      case TRAILER_NAME:
        if (TOKEN_CHARS[c] === 1) {
          if (this.trailerName.length <= LONGEST_FORBIDDEN_TRAILER) this.trailerName += String.fromCharCode(c | (c >= 0x41 && c <= 0x5a ? 0x20 : 0))
          return
        }
        if (c === COLON) {
          if (this.side === 'request' && FORBIDDEN_REQUEST_TRAILERS.has(this.trailerName)) {
            throw this.bad(`${this.trailerName} is not allowed in a trailer (trailer line ${this.trailerLines})`)
          }
          this.state = TRAILER_VALUE
          return
        }
        if (c === SP || c === HTAB) throw this.bad(`whitespace after field name in trailer line ${this.trailerLines}`)
        if (c === CR || c === LF) throw this.bad(`missing colon in trailer line ${this.trailerLines}`)
        throw this.bad(`invalid character ${describeByte(c)} in field name of trailer line ${this.trailerLines}`)
      case TRAILER_VALUE:
        if (c === CR) {
          this.state = TRAILER_LINE_LF
          return
        }
        if (c === HTAB || (c >= SP && c !== DEL)) return
        throw this.bad(c === LF ? `bare LF in trailer line ${this.trailerLines}` : `invalid character ${describeByte(c)} in field value of trailer line ${this.trailerLines}`)
      case TRAILER_LINE_LF:
        if (c !== LF) throw this.bad(`bare CR in trailer line ${this.trailerLines}`)
        this.state = TRAILER_LINE_START
        return
      case FINAL_LF:
        if (c !== LF) throw this.bad('bare CR at the end of the trailer section')
        this.state = DONE
        return
    }
  }

  private badSizeStart(c: number): Error {
    if (c === SP || c === HTAB) return this.bad('whitespace before chunk size')
    if (c === 0x2b || c === 0x2d) return this.bad('signed chunk size')
    if (c === CR) return this.bad('empty chunk size')
    if (c === LF) return this.bad('bare LF in chunk size line')
    return this.bad(`invalid character ${describeByte(c)} in chunk size`)
  }

  private bad(message: string): Error {
    return this.fail('TUN_ERR_HTTP_BAD_REQUEST', message)
  }

  private fail(code: RequestFramingCode, message: string): Error {
    return framingError(this.side, code, message)
  }
}

import type { BodyFraming } from './body-framing.ts'
import { ChunkedBodyReader } from './chunked-body-reader.ts'
import type { FramerSide } from './framing-error.ts'
import type { Http1Limits } from './http1-limits.ts'

/**
 * Passes one message body through, as slices of the pushed chunks, for the body kinds whose end
 * the bytes themselves tell: Content-Length and chunked. Shared by the request and response
 * framers so both count and check bodies the same way.
 */
export class FramedBodyReader {
  private readonly chunkedReader: ChunkedBodyReader
  private chunked = false
  private remaining = 0
  private length = 0

  constructor(side: FramerSide, limits: Http1Limits) {
    this.chunkedReader = new ChunkedBodyReader(side, limits)
  }

  /** Starts reading a body; false when the framing carries no bytes to read (none, length 0, until-close). */
  start(framing: BodyFraming): boolean {
    if (framing.kind === 'chunked') {
      this.chunked = true
      this.chunkedReader.reset()
      return true
    }
    if (framing.kind === 'length' && framing.length > 0) {
      this.chunked = false
      this.remaining = this.length = framing.length
      return true
    }
    return false
  }

  /** Hands chunk[pos..] up to the end of the body to onBody and returns the offset reached. */
  feed(chunk: Buffer, pos: number, onBody: (slice: Buffer) => void): number {
    if (this.chunked) {
      const end = this.chunkedReader.feed(chunk, pos)
      if (end > pos) onBody(chunk.subarray(pos, end))
      return end
    }
    const n = Math.min(this.remaining, chunk.length - pos)
    this.remaining -= n
    onBody(chunk.subarray(pos, pos + n))
    return pos + n
  }

  get done(): boolean {
    return this.chunked ? this.chunkedReader.done : this.remaining === 0
  }

  /** Why the body is unfinished, for a peer that closed in the middle of it. */
  describeUnfinished(): string {
    return this.chunked
      ? 'connection closed in the middle of a chunked body'
      : `connection closed after ${this.length - this.remaining} of ${this.length} body bytes`
  }
}

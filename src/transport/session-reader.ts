import type { Socket } from 'node:net'
import { readIntoBuffer } from './accepted-socket-reads.ts'
import type { SessionInput } from './session-mux/index.ts'

/**
 * What session connections read into: one buffer for every session of the process, the agent's
 * (decision 56) and the server's (decision 57). A read is handed to its owner, which copies what it
 * keeps, before the event loop reads any socket again; so nothing is allocated per TLS record.
 */
export const SESSION_READ_BUFFER = Buffer.allocUnsafeSlow(64 * 1024)

/**
 * The reads of one session connection, passed to one owner after another: the connect handshake
 * first, then the session. Between two owners (and before the next one has taken what is waiting)
 * reads are kept, copied, in order.
 */
export class SessionReader implements SessionInput {
  #sink: ((chunk: Buffer) => void) | undefined
  #waiting: Buffer[] = []
  #flushScheduled = false

  /** A read of the connection; its memory may be reused once this returns. */
  deliver(chunk: Buffer): void {
    if (this.#sink !== undefined && this.#waiting.length === 0) this.#sink(chunk)
    else this.#waiting.push(Buffer.from(chunk))
  }

  /**
   * The next owner. What waits reaches it from the event loop, not inside this call: an owner
   * attaches while it is being constructed, before its own listeners are in place.
   */
  attach(sink: (chunk: Buffer) => void): void {
    this.#sink = sink
    if (this.#waiting.length > 0) this.#scheduleFlush()
  }

  /** The owner is done; `rest` (bytes it read past its part, its own copy) goes first to the next. */
  detach(rest?: Buffer): void {
    this.#sink = undefined
    if (rest !== undefined && rest.length > 0) this.#waiting.unshift(rest)
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return
    this.#flushScheduled = true
    setImmediate(() => {
      this.#flushScheduled = false
      // An owner may detach while it handles a read: what is left waits for the next one.
      while (this.#sink !== undefined && this.#waiting.length > 0) this.#sink(this.#waiting.shift()!)
    })
  }
}

/**
 * The reads of a session connection the server accepted (an agent's upgraded connection), into
 * SESSION_READ_BUFFER where Node allows it, as 'data' events otherwise. `head` is what was read past
 * the upgrade request; it comes first.
 */
export function acceptedSessionReader(socket: Socket, head: Buffer): SessionReader {
  const reader = new SessionReader()
  if (head.length > 0) reader.deliver(head)
  if (!readIntoBuffer(socket, SESSION_READ_BUFFER, (chunk) => reader.deliver(chunk))) {
    socket.on('data', (chunk: Buffer) => reader.deliver(chunk))
  }
  return reader
}

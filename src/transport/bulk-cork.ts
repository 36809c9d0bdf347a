import type { Writable } from 'node:stream'

/** Chunks this large (half a TLS record or more) are taken for part of a bulk transfer. */
export const BULK_CHUNK_BYTES = 8 * 1024

/**
 * The uncork that goes with one cork() of a socket a relay writes received chunks to.
 *
 * A relay receives a bulk transfer as TLS records of at most 16 KiB, and one read of its session's
 * socket usually decrypts several of them, each handed over on its own. Written one by one, each
 * record costs a system call; on loopback the kernel also delivers every write to the receiver
 * there and then, so those calls are most of a relay's CPU per byte. After a bulk-sized chunk the
 * socket therefore stays corked until setImmediate (after this turn of the event loop's I/O), and
 * the records of that read reach the kernel in one writev. A small chunk (a request's answer) is
 * uncorked at once, as it was: it is usually alone, and deferring it would cost an Immediate and
 * a turn of latency for nothing.
 *
 * `end()` and `destroy()` uncork by themselves, and uncorking an uncorked socket does nothing, so
 * a socket that closes in the meantime needs no care.
 */
export class BulkCork {
  readonly #socket: Writable
  #deferred = false

  constructor(socket: Writable) {
    this.#socket = socket
  }

  /** After `socket.cork()` and the writes of one chunk of `bytes` received. */
  uncork(bytes: number): void {
    if (this.#deferred || bytes < BULK_CHUNK_BYTES) {
      this.#socket.uncork()
      return
    }
    // This cork stays until then; later chunks of the same turn cork and uncork above it.
    this.#deferred = true
    setImmediate(() => {
      this.#deferred = false
      this.#socket.uncork()
    })
  }
}

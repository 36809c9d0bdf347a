/**
 * Events sent to one peer and not yet acknowledged, oldest first, as EVENT payloads (each link
 * seals what it writes with its own keys). A link that comes (back) up
 * sends all of them again, which is what makes delivery at-least-once across reconnects. Bounded:
 * past `maxEntries` the oldest is dropped and counted, so a peer that stays away costs bounded memory.
 */
export class PeerOutbox {
  readonly #maxEntries: number
  #entries: Array<{ seq: number; payload: Buffer }> = []
  #head = 0
  #dropped = 0

  constructor(maxEntries: number) {
    this.#maxEntries = maxEntries
  }

  get size(): number {
    return this.#entries.length - this.#head
  }

  /** events dropped because the outbox was full */
  get dropped(): number {
    return this.#dropped
  }

  push(seq: number, payload: Buffer): void {
    this.#entries.push({ seq, payload })
    if (this.size > this.#maxEntries) {
      this.#head++
      this.#dropped++
    }
    this.#compact()
  }

  /** Forgets every event up to and including `seq` (acknowledgements are cumulative per link). */
  ack(seq: number): void {
    while (this.#head < this.#entries.length && this.#entries[this.#head]!.seq <= seq) this.#head++
    this.#compact()
  }

  /** The oldest event after `seq`, or undefined. */
  nextAfter(seq: number): { seq: number; payload: Buffer } | undefined {
    let lo = this.#head
    let hi = this.#entries.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.#entries[mid]!.seq <= seq) lo = mid + 1
      else hi = mid
    }
    return this.#entries[lo]
  }

  #compact(): void {
    // Amortised O(1): shift the array only once the dead prefix is as large as the live part.
    if (this.#head > 64 && this.#head * 2 > this.#entries.length) {
      this.#entries = this.#entries.slice(this.#head)
      this.#head = 0
    }
  }
}

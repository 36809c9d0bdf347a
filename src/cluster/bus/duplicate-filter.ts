/**
 * Drops events delivered before. A sender numbers its events 1, 2, 3… per incarnation (process
 * lifetime) and every link delivers them in order, resending from its oldest unacknowledged one;
 * so "seen" is simply "sequence number not above the highest delivered" for that sender.
 * Bounded: past `maxSenders` the sender heard from longest ago is forgotten.
 */
export class DuplicateFilter {
  readonly #maxSenders: number
  readonly #highest = new Map<string, number>()

  constructor(maxSenders = 1000) {
    this.#maxSenders = maxSenders
  }

  /** True the first time (sender, seq) comes by, and records it. */
  isNew(sender: string, seq: number): boolean {
    const highest = this.#highest.get(sender) ?? 0
    if (seq <= highest) return false
    // Re-insert so the map's order is least recently heard first.
    this.#highest.delete(sender)
    this.#highest.set(sender, seq)
    if (this.#highest.size > this.#maxSenders) this.#highest.delete(this.#highest.keys().next().value!)
    return true
  }
}

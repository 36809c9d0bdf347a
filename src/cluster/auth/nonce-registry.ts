/**
 * The client nonces of this node's handshakes in flight. A server that receives one of them as a
 * peer's nonce is looking at its own words bounced back (reflection) and refuses.
 */
export class NonceRegistry {
  readonly #inFlight = new Set<string>()

  add(nonce: Buffer): void {
    this.#inFlight.add(nonce.toString('latin1'))
  }

  delete(nonce: Buffer): void {
    this.#inFlight.delete(nonce.toString('latin1'))
  }

  has(nonce: Buffer): boolean {
    return this.#inFlight.has(nonce.toString('latin1'))
  }

  get size(): number {
    return this.#inFlight.size
  }
}

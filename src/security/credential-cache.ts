/**
 * What the database said about a credential's key (a tunnel id, a token's hash), kept in memory for
 * a few seconds so that presenting a valid credential again costs no lookup, and presenting one for
 * a key the database does not hold costs no lookup either (a negative entry).
 *
 * - Bounded: past `maxEntries` the entry stored longest ago goes first, so spraying random keys
 *   evicts, it never grows memory.
 * - Revocation is the caller's: `invalidate` drops an entry at once. A lookup that was already in
 *   flight when an entry was invalidated does not store its (possibly stale) answer.
 * - Concurrent misses for one key share one lookup.
 */
export class CredentialCache<V> {
  readonly ttlMs: number
  readonly maxEntries: number
  readonly #now: () => number
  readonly #entries = new Map<string, { value: V | undefined; expiresAt: number }>()
  readonly #loading = new Map<string, Promise<V | undefined>>()
  /** bumped by every invalidation: a lookup that started before one must not store what it read */
  #generation = 0

  constructor(options: { ttlMs?: number; maxEntries?: number; now?: () => number } = {}) {
    this.ttlMs = options.ttlMs ?? 5_000
    this.maxEntries = options.maxEntries ?? 10_000
    this.#now = options.now ?? Date.now
  }

  /** The cached answer (`value` undefined: known absent), or undefined when it must be looked up. */
  peek(key: string): { value: V | undefined } | undefined {
    const e = this.#entries.get(key)
    if (e === undefined) return undefined
    if (this.#now() >= e.expiresAt) {
      this.#entries.delete(key)
      return undefined
    }
    return { value: e.value }
  }

  /** The cached answer, or the loader's, which is then kept for `ttlMs`. */
  async get(key: string, load: (key: string) => Promise<V | undefined>): Promise<V | undefined> {
    const hit = this.peek(key)
    if (hit !== undefined) return hit.value
    const inFlight = this.#loading.get(key)
    if (inFlight !== undefined) return inFlight
    const generation = this.#generation
    const loading = load(key).then((value) => {
      if (generation === this.#generation) this.#store(key, value)
      return value
    })
    this.#loading.set(key, loading)
    const forget = (): void => {
      if (this.#loading.get(key) === loading) this.#loading.delete(key)
    }
    loading.then(forget, forget)
    return loading
  }

  invalidate(key: string): void {
    this.#generation++
    this.#entries.delete(key)
    this.#loading.delete(key)
  }

  /** Drops every entry whose value matches (a token revoked by id, when entries are keyed by hash). */
  invalidateWhere(match: (value: V) => boolean): void {
    this.#generation++
    for (const [key, e] of this.#entries) if (e.value !== undefined && match(e.value)) this.#entries.delete(key)
    this.#loading.clear()
  }

  get size(): number {
    return this.#entries.size
  }

  #store(key: string, value: V | undefined): void {
    this.#entries.delete(key)
    while (this.#entries.size >= this.maxEntries) {
      const oldest = this.#entries.keys().next()
      if (oldest.done === true) break
      this.#entries.delete(oldest.value)
    }
    this.#entries.set(key, { value, expiresAt: this.#now() + this.ttlMs })
  }
}

import { isIPv4, isIPv6 } from 'node:net'
import { TunnelError } from '../../errors/index.ts'

/** One connection counted against its source; release() is idempotent. */
export interface SourceLease {
  release(): void
}

const NO_LEASE: SourceLease = { release() {} }

/**
 * The key a caller is counted under. IPv4: the address. IPv6: its /64, since one host or
 * subscriber is normally handed a whole /64 and can pick any address inside it (privacy
 * addresses), so counting single IPv6 addresses would not bound anyone. IPv4-mapped IPv6
 * (`::ffff:10.1.2.3`, from a dual-stack listener) counts as the IPv4 it is.
 */
export function sourceKeyOf(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  if (mapped !== null) return mapped[1]!
  if (isIPv4(address)) return address
  const bare = address.replace(/%.*$/, '')
  if (!isIPv6(bare)) return address
  const groups = ipv6Groups(bare)
  return `${groups.slice(0, 4).map((g) => g.toString(16)).join(':')}::/64`
}

/** The eight 16-bit groups of a valid IPv6 address (`::` expanded, a trailing dotted quad split in two). */
function ipv6Groups(address: string): number[] {
  const parse = (part: string): number[] => {
    if (part === '') return []
    const out: number[] = []
    for (const piece of part.split(':')) {
      if (piece.includes('.')) {
        const [a, b, c, d] = piece.split('.').map(Number) as [number, number, number, number]
        out.push((a << 8) | b, (c << 8) | d)
      } else out.push(parseInt(piece, 16))
    }
    return out
  }
  const gap = address.indexOf('::')
  if (gap === -1) return parse(address)
  const head = parse(address.slice(0, gap))
  const tail = parse(address.slice(gap + 2))
  return [...head, ...Array<number>(8 - head.length - tail.length).fill(0), ...tail]
}

/**
 * Concurrent caller connections per (tunnel, source), so one address cannot hold every relay
 * stream of a tunnel (docs/decisions.md, entry 36). Counts live in this replica only.
 */
export class SourceLimits {
  readonly #max: number
  readonly #counts = new Map<string, number>()

  /** max 0: no cap (counts are not kept either) */
  constructor(maxConnectionsPerSource: number) {
    this.#max = maxConnectionsPerSource
  }

  /**
   * Counts one more connection from address to tunnelId, or throws TUN_ERR_INGRESS_SOURCE_LIMIT
   * when that source already holds the maximum. The lease must be released when the connection closes.
   */
  acquire(tunnelId: string, address: string): SourceLease {
    if (this.#max === 0) return NO_LEASE
    const source = sourceKeyOf(address)
    const key = `${tunnelId} ${source}`
    const n = this.#counts.get(key) ?? 0
    if (n >= this.#max) {
      throw new TunnelError(
        'TUN_ERR_INGRESS_SOURCE_LIMIT',
        `${source.endsWith('/64') ? `the source network ${source}` : `the source address ${source}`} already holds ${n} connections to this tunnel, the most one source may hold (maxConnectionsPerSource ${this.#max}); close some or reuse them`,
        { details: { maxConnectionsPerSource: this.#max } },
      )
    }
    this.#counts.set(key, n + 1)
    let released = false
    return {
      release: () => {
        if (released) return
        released = true
        const left = (this.#counts.get(key) ?? 1) - 1
        if (left <= 0) this.#counts.delete(key)
        else this.#counts.set(key, left)
      },
    }
  }

  /** Connections counted now for address (its /64 for IPv6) on tunnelId. */
  count(tunnelId: string, address: string): number {
    return this.#counts.get(`${tunnelId} ${sourceKeyOf(address)}`) ?? 0
  }

  /** (tunnel, source) pairs with at least one connection counted: 0 when every lease came back. */
  get sources(): number {
    return this.#counts.size
  }
}

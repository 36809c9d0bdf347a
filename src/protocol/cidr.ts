import { BlockList, isIPv4, isIPv6 } from 'node:net'
import { TunnelError } from '../errors/index.ts'

export interface Cidr {
  /** the network address as written (normalised by the parser) */
  network: string
  prefix: number
  family: 'ipv4' | 'ipv6'
}

/**
 * Parses `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a /32 or /128). Refuses anything else
 * with a message naming the input, so an allow-list typo can never silently allow nobody or everybody.
 */
export function parseCidr(text: string): Cidr {
  const trimmed = text.trim()
  const slash = trimmed.indexOf('/')
  const address = slash === -1 ? trimmed : trimmed.slice(0, slash)
  const family = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : undefined
  if (family === undefined) throw new TunnelError('TUN_ERR_API_BAD_REQUEST', `"${text}" is not an IPv4 or IPv6 address or CIDR block`)
  const max = family === 'ipv4' ? 32 : 128
  let prefix = max
  if (slash !== -1) {
    const p = trimmed.slice(slash + 1)
    if (!/^\d{1,3}$/.test(p) || Number(p) > max) throw new TunnelError('TUN_ERR_API_BAD_REQUEST', `"${text}": the prefix length must be 0-${max}`)
    prefix = Number(p)
  }
  return { network: address.toLowerCase(), prefix, family }
}

export function formatCidr(c: Cidr): string {
  return `${c.network}/${c.prefix}`
}

/**
 * Whether a source address falls in any of a set of CIDR blocks. IPv4-mapped IPv6 sources
 * (`::ffff:10.1.2.3`, what a dual-stack listener reports) are checked as the IPv4 they are.
 */
export class AddressMatcher {
  readonly #list = new BlockList()
  readonly size: number

  constructor(blocks: readonly Cidr[]) {
    for (const b of blocks) this.#list.addSubnet(b.network, b.prefix, b.family)
    this.size = blocks.length
  }

  matches(address: string): boolean {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
    if (mapped !== null) return this.#list.check(mapped[1]!, 'ipv4')
    if (isIPv4(address)) return this.#list.check(address, 'ipv4')
    if (isIPv6(address)) return this.#list.check(address, 'ipv6')
    return false
  }
}

import { isValidTunnelId } from '../../protocol/index.ts'

/**
 * Maps a Host header to a tunnel id: `<tunnel-id>.<domain>[:port]`, case-insensitive. Returns
 * undefined for anything else (the ingress answers 404).
 */
export class HostRouter {
  readonly #suffix: string

  constructor(domain: string) {
    this.#suffix = '.' + domain.toLowerCase().replace(/^\.+|\.+$/g, '')
  }

  tunnelIdFor(host: string | undefined): string | undefined {
    if (host === undefined) return undefined
    let name = host.toLowerCase()
    if (name.startsWith('[')) return undefined // an IPv6 literal never names a tunnel
    const colon = name.lastIndexOf(':')
    if (colon >= 0) {
      if (!/^\d{1,5}$/.test(name.slice(colon + 1))) return undefined
      name = name.slice(0, colon)
    }
    if (name.endsWith('.')) name = name.slice(0, -1)
    if (!name.endsWith(this.#suffix)) return undefined
    const label = name.slice(0, -this.#suffix.length)
    return isValidTunnelId(label) ? label : undefined
  }

  urlFor(tunnelId: string, base: { scheme: 'http' | 'https'; port: number; domain: string }): string {
    const defaultPort = base.scheme === 'https' ? 443 : 80
    return `${base.scheme}://${tunnelId}.${base.domain}${base.port === defaultPort ? '' : `:${base.port}`}/`
  }
}

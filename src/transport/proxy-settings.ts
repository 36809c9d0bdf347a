import { isIP } from 'node:net'
import { TunnelError } from '../errors/index.ts'
import { AddressMatcher, parseCidr } from '../protocol/index.ts'

/**
 * Which HTTP CONNECT proxy, if any, the agent's connection to a server goes through. Pure: the
 * values come from `--proxy`/`--no-proxy` or the environment (read by the CLI, see
 * {@link proxyEnvironment}) and are checked once when the agent configuration is loaded.
 *
 * Semantics follow curl where curl and Go differ (docs/decisions.md):
 * - the proxy URL is `http://[user:password@]host:port`; a missing scheme means http, the port is
 *   required, credentials are percent-decoded; `https://` (TLS to the proxy) and other schemes are
 *   refused;
 * - NO_PROXY is a list separated by commas or whitespace: `*` alone (everything), a domain (that
 *   name and every name under it, with or without a leading `.` or `*.`), an IPv4/IPv6 address or
 *   CIDR block (matched against address targets only: names are never resolved), each optionally
 *   with `:port`. Loopback is not exempt by itself, unlike Go.
 */

export interface ProxyEndpoint {
  host: string
  port: number
  /** `host:port` (`[v6]:port`) for messages and logs: never the credentials */
  label: string
  /** the Proxy-Authorization value (`Basic …`) when the URL carried a user; never logged */
  authorization?: string
}

export interface NoProxyRule {
  /** the entry as normalised, for logs */
  text: string
  /** only this port, when the entry gave one */
  port?: number
  match: { kind: 'all' } | { kind: 'domain'; domain: string } | { kind: 'address'; matcher: AddressMatcher }
}

export interface ProxySettings {
  proxy: ProxyEndpoint
  noProxy: readonly NoProxyRule[]
}

const USAGE = 'expected http://[user:password@]host:port'
const SOURCES = { proxy: '--proxy, https_proxy or HTTPS_PROXY', noProxy: '--no-proxy, no_proxy or NO_PROXY' } as const

function invalid(field: 'proxy' | 'noProxy', why: string): TunnelError {
  return new TunnelError('TUN_ERR_CONFIG_INVALID', `${field}: ${why} (set by ${SOURCES[field]})`)
}

/**
 * The proxy values the environment gives, as curl and most tools read them: the lower-case
 * variable first (`https_proxy`, `no_proxy`), then the upper-case one; an empty value is unset.
 * `HTTP_PROXY` and `ALL_PROXY` are not read (docs/decisions.md).
 */
export function proxyEnvironment(env: Readonly<Record<string, string | undefined>>): { proxy?: string; noProxy?: string } {
  const pick = (...names: string[]): string | undefined => names.map((n) => env[n]).find((v) => v !== undefined && v.trim() !== '')
  const proxy = pick('https_proxy', 'HTTPS_PROXY')
  const noProxy = pick('no_proxy', 'NO_PROXY')
  return { ...(proxy === undefined ? {} : { proxy }), ...(noProxy === undefined ? {} : { noProxy }) }
}

/**
 * The settings for a configured proxy URL and NO_PROXY list; undefined when no proxy is set (an
 * empty `--proxy ''` turns off a proxy the environment sets). NO_PROXY is only checked when there
 * is a proxy it could apply to.
 */
export function proxySettingsFrom(proxy: string | undefined, noProxy: string | undefined): ProxySettings | undefined {
  if (proxy === undefined || proxy.trim() === '') return undefined
  return { proxy: parseProxyUrl(proxy), noProxy: parseNoProxy(noProxy ?? '') }
}

/** Parses a proxy URL; every refusal is a TUN_ERR_CONFIG_INVALID naming `proxy` and never echoes a password. */
export function parseProxyUrl(text: string): ProxyEndpoint {
  const trimmed = text.trim()
  if (trimmed === '') throw invalid('proxy', `the proxy URL is empty (${USAGE})`)
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(trimmed)?.[1]?.toLowerCase()
  if (scheme === 'https') {
    throw invalid('proxy', 'https:// proxies (TLS to the proxy) are not supported: give the proxy\'s http:// address; the connection to the tunnel server inside the tunnel is TLS either way')
  }
  if (scheme !== undefined && scheme !== 'http') throw invalid('proxy', `${scheme}:// proxies are not supported, only HTTP CONNECT proxies (${USAGE})`)
  const withScheme = scheme === undefined ? `http://${trimmed}` : trimmed
  let url: URL
  try {
    url = new URL(withScheme)
  } catch {
    throw invalid('proxy', `"${redactProxyUrl(trimmed)}" is not a valid proxy URL (${USAGE})`)
  }
  const authority = withScheme.slice(withScheme.indexOf('//') + 2).split(/[/?#]/, 1)[0]!
  const hostPort = authority.slice(authority.lastIndexOf('@') + 1)
  // URL drops a port equal to the scheme's default, so whether one was written is read from the text.
  const portWritten = /^(\[[^\]]*\]|[^:]*):\d+$/.test(hostPort)
  if (!portWritten) throw invalid('proxy', `the proxy URL must give the port, e.g. http://proxy.example.com:3128 (got "${redactProxyUrl(trimmed)}")`)
  const port = url.port === '' ? 80 : Number(url.port)
  if (port === 0) throw invalid('proxy', 'the proxy port must be 1-65535')
  if ((url.pathname !== '' && url.pathname !== '/') || url.search !== '' || url.hash !== '') {
    throw invalid('proxy', `the proxy URL must not have a path, query or fragment (${USAGE})`)
  }
  const host = url.hostname.replace(/^\[|\]$/g, '')
  if (host === '') throw invalid('proxy', `the proxy URL has no host (${USAGE})`)
  let username: string
  let password: string
  try {
    username = decodeURIComponent(url.username)
    password = decodeURIComponent(url.password)
  } catch {
    throw invalid('proxy', 'the user name or password in the proxy URL has a malformed %-escape')
  }
  if (username === '' && password !== '') throw invalid('proxy', 'the proxy URL has a password but no user name')
  const label = `${host.includes(':') ? `[${host}]` : host}:${port}`
  return {
    host,
    port,
    label,
    ...(username === '' ? {} : { authorization: `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}` }),
  }
}

/** The URL with anything before an `@` in its authority replaced, for messages. */
export function redactProxyUrl(text: string): string {
  return text.replace(/^([a-z][a-z0-9+.-]*:\/\/)?[^/?#]*@/i, (_m, scheme: string | undefined) => `${scheme ?? ''}***@`)
}

/** Parses a NO_PROXY list; an entry that is none of the forms above is refused, naming it. */
export function parseNoProxy(text: string): NoProxyRule[] {
  const rules: NoProxyRule[] = []
  for (const raw of text.split(/[\s,]+/)) {
    const entry = raw.toLowerCase()
    if (entry === '') continue
    rules.push(parseNoProxyEntry(entry, raw))
  }
  return rules
}

function parseNoProxyEntry(entry: string, raw: string): NoProxyRule {
  if (entry === '*') return { text: '*', match: { kind: 'all' } }
  const bad = (why: string): TunnelError => invalid('noProxy', `"${raw}" ${why}`)
  let host = entry
  let port: number | undefined
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry)
  if (bracketed !== null) {
    host = bracketed[1]!
    if (bracketed[2] !== undefined) port = Number(bracketed[2])
  } else if (isIP(entry.split('/')[0]!) !== 6) {
    const hostPort = /^([^:]+):(\d+)$/.exec(entry)
    if (hostPort !== null) {
      host = hostPort[1]!
      port = Number(hostPort[2])
    } else if (entry.includes(':')) {
      throw bad('is not a host, domain, address or CIDR block with an optional :port')
    }
  }
  if (port !== undefined && !(port >= 1 && port <= 65535)) throw bad('has a port outside 1-65535')
  const portPart = port === undefined ? {} : { port }
  const suffix = port === undefined ? '' : `:${port}`
  if (isIP(host.split('/')[0]!) !== 0) {
    let cidr
    try {
      cidr = parseCidr(host)
    } catch {
      throw bad(`has a bad prefix length (0-${isIP(host.split('/')[0]!) === 4 ? 32 : 128})`)
    }
    const text = `${cidr.family === 'ipv6' && port !== undefined ? `[${host}]` : host}${suffix}`
    return { text, ...portPart, match: { kind: 'address', matcher: new AddressMatcher([cidr]) } }
  }
  const domain = host.replace(/^\*?\./, '').replace(/\.$/, '')
  if (!/^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/.test(domain)) {
    throw bad('is not a host name, domain, IP address or CIDR block (a wildcard is only allowed as a leading "*.")')
  }
  return { text: `${domain}${suffix}`, ...portPart, match: { kind: 'domain', domain } }
}

/** Whether a NO_PROXY list sends the connection to host:port directly. */
export function bypassesProxy(rules: readonly NoProxyRule[], host: string, port: number): boolean {
  const name = host.toLowerCase().replace(/^\[|\]$/g, '').replace(/\.$/, '')
  const address = isIP(name) !== 0
  return rules.some((r) => {
    if (r.port !== undefined && r.port !== port) return false
    switch (r.match.kind) {
      case 'all':
        return true
      case 'domain':
        return !address && (name === r.match.domain || name.endsWith(`.${r.match.domain}`))
      case 'address':
        return address && r.match.matcher.matches(name)
    }
  })
}

/** The proxy to use for a connection to host:port, or undefined to connect directly. */
export function proxyFor(settings: ProxySettings | undefined, host: string, port: number): ProxyEndpoint | undefined {
  if (settings === undefined || bypassesProxy(settings.noProxy, host, port)) return undefined
  return settings.proxy
}

/** What a log line may say about the settings: where the proxy is, not who logs in to it. */
export function describeProxy(settings: ProxySettings): { proxy: string; proxyAuth: 'basic' | 'none'; noProxy: string[] } {
  return { proxy: `http://${settings.proxy.label}`, proxyAuth: settings.proxy.authorization === undefined ? 'none' : 'basic', noProxy: settings.noProxy.map((r) => r.text) }
}

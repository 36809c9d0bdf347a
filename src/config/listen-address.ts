import { TunnelError } from '../errors/index.ts'

export interface ListenAddress {
  host: string
  port: number
}

/** Parses `HOST:PORT`, `[v6]:PORT` or `:PORT`; the error names the option it came from. */
export function parseListenAddress(value: string, option: string): ListenAddress {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(value.trim())
  const port = m === null ? NaN : Number(m[3])
  if (m === null || !(port >= 0 && port <= 65535)) {
    throw new TunnelError('TUN_ERR_CONFIG_INVALID', `${option}: "${value}" is not HOST:PORT (e.g. 127.0.0.1:8443, port 0-65535)`)
  }
  const host = m[1] ?? (m[2] === '' ? '127.0.0.1' : m[2]!)
  return { host, port }
}

/** A listen host as a URL writes it: a wildcard means this host (localhost), IPv6 in brackets. */
export function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return 'localhost'
  return host.includes(':') ? `[${host}]` : host
}

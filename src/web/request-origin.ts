import { timingSafeEqual } from 'node:crypto'
import type { IncomingMessage } from 'node:http'

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])

export function isStateChanging(method: string | undefined): boolean {
  return !SAFE_METHODS.has((method ?? 'GET').toUpperCase())
}

/**
 * Why a state-changing request may not come from our own pages, or undefined when it does. The
 * browser's `Sec-Fetch-Site` and `Origin` are checked against the console's own origin (scheme,
 * host and port): SameSite cookies alone do not stop a page of the same host on another port, which
 * is the same *site* but not the same *origin*. Requests without an Origin are refused: every
 * browser sends one on POST and DELETE, and non-browser clients use bearer tokens instead.
 */
export function crossOriginProblem(req: IncomingMessage): string | undefined {
  const fetchSite = req.headers['sec-fetch-site']
  if (fetchSite !== undefined && fetchSite !== 'same-origin') return `the request came from another site (Sec-Fetch-Site: ${String(fetchSite)})`
  const origin = req.headers.origin
  if (origin === undefined) return 'the request has no Origin header'
  const host = req.headers.host
  if (host === undefined || origin !== `https://${host}`) return `the request came from another origin (${origin})`
  return undefined
}

/** Constant-time comparison of the X-CSRF-Token header with the session's token. */
export function csrfTokenMatches(req: IncomingMessage, expected: string): boolean {
  const given = req.headers['x-csrf-token']
  if (typeof given !== 'string') return false
  const a = Buffer.from(given)
  const b = Buffer.from(expected)
  return a.length === b.length && timingSafeEqual(a, b)
}

import type { RequestHead } from '../../protocol/http1/index.ts'
import { equalsIgnoreCaseAt } from '../../protocol/http1/token-chars.ts'

/**
 * What the ingress changes in a request head before it goes to the upstream. Bodies are never
 * touched, so framing headers (Content-Length, Transfer-Encoding: chunked) stay as validated.
 *
 * - Hop-by-hop fields (RFC 9110 §7.6.1) and every field named in Connection are dropped; the
 *   relay's own Connection is added back so keep-alive and upgrade behave as the client asked.
 * - X-Forwarded-For/-Proto/-Host and Forwarded are replaced, not appended: the ingress is the first
 *   hop we trust, so whatever a caller claims there is a spoof (see docs/decisions.md).
 * - Host is kept byte for byte: the on-prem app builds its base URL from it.
 */
const HOP_BY_HOP = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'upgrade',
  'proxy-authorization',
  'proxy-authenticate',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-forwarded-port',
  'forwarded',
  // the linked product's credential is for the ingress; the app never sees it
  'x-apptunnel-credential',
]

/**
 * The names above by length: a field is matched against those of its length only, without
 * lower-casing it (a fresh string, hashed for the lookup, for every field of every request).
 */
const HOP_BY_HOP_BY_LENGTH = new Map<number, string[]>()
for (const n of HOP_BY_HOP) HOP_BY_HOP_BY_LENGTH.set(n.length, [...(HOP_BY_HOP_BY_LENGTH.get(n.length) ?? []), n])

function isHopByHop(name: string): boolean {
  const candidates = HOP_BY_HOP_BY_LENGTH.get(name.length)
  if (candidates === undefined) return false
  for (let i = 0; i < candidates.length; i++) if (equalsIgnoreCaseAt(name, 0, candidates[i]!)) return true
  return false
}

/**
 * Fields a client may not remove by naming them in Connection: dropping a framing field while the
 * ingress still frames the body by it would smuggle the body upstream as a new request, and Host
 * must reach the app unchanged.
 */
const NEVER_DROPPED = new Set(['close', 'keep-alive', 'upgrade', 'host', 'content-length', 'transfer-encoding'])

export interface ForwardingContext {
  clientAddress: string
  proto: 'http' | 'https'
}

export function rewriteRequestHeaders(head: RequestHead, ctx: ForwardingContext): Array<[string, string]> {
  let named: Set<string> | undefined
  const out: Array<[string, string]> = []
  let upgradeValue: string | undefined
  for (const [name, value] of head.headers) {
    if (name.length === 10 && equalsIgnoreCaseAt(name, 0, 'connection')) {
      for (const token of value.split(',')) {
        const t = token.trim().toLowerCase()
        if (t.length > 0 && !NEVER_DROPPED.has(t)) (named ??= new Set()).add(t)
      }
    }
  }
  for (const pair of head.headers) {
    const name = pair[0]
    if (name.length === 7 && equalsIgnoreCaseAt(name, 0, 'upgrade')) upgradeValue = pair[1]
    if (isHopByHop(name)) continue
    if (named !== undefined && named.has(name.toLowerCase())) continue
    out.push(pair)
  }
  if (head.upgrade && upgradeValue !== undefined) {
    out.push(['Connection', 'Upgrade'], ['Upgrade', upgradeValue])
  } else if (!head.keepAlive) {
    out.push(['Connection', 'close'])
  } else if (head.versionMinor === 0) {
    out.push(['Connection', 'keep-alive'])
  }
  out.push(['X-Forwarded-For', ctx.clientAddress], ['X-Forwarded-Proto', ctx.proto])
  if (head.host !== undefined) out.push(['X-Forwarded-Host', head.host])
  return out
}

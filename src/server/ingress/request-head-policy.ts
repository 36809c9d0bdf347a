import { FieldNameSet, serializeFieldLines, serializeRequestHead, type RequestHead } from '../../protocol/http1/index.ts'
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
 * The names above, matched without lower-casing each field (a fresh string, hashed for a lookup,
 * for every field of every request). The ingress's request framer looks for them while it parses,
 * so a head with none of them is known to go as received (forwardRequestHead).
 */
export const FORWARDING_FIELDS = new FieldNameSet(HOP_BY_HOP)

/**
 * Fields a client may not remove by naming them in Connection: dropping a framing field while the
 * ingress still frames the body by it would smuggle the body upstream as a new request, and Host
 * must reach the app unchanged.
 */
const NEVER_DROPPED = new Set(['close', 'keep-alive', 'upgrade', 'host', 'content-length', 'transfer-encoding'])

export interface ForwardingContext {
  readonly clientAddress: string
  readonly proto: 'http' | 'https'
  /** `X-Forwarded-For` and `X-Forwarded-Proto` as field lines, checked and built once per connection */
  readonly forwardedLines: string
}

/** A caller connection's forwarding fields (its address cannot change, so they are serialised once). */
export function forwardingContext(clientAddress: string, proto: 'http' | 'https'): ForwardingContext {
  return { clientAddress, proto, forwardedLines: serializeFieldLines([['X-Forwarded-For', clientAddress], ['X-Forwarded-Proto', proto]]) }
}

/** What the rewrite reads of a head. */
export type RewrittenHead = Pick<RequestHead, 'headers' | 'versionMinor' | 'keepAlive' | 'upgrade' | 'host'>

export function rewriteRequestHeaders(head: RewrittenHead, ctx: ForwardingContext): Array<[string, string]> {
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
    if (FORWARDING_FIELDS.has(name)) continue
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

/**
 * The request head the upstream gets, as wire bytes. A head with no field the policy drops or
 * replaces (no Connection, hence no upgrade, and no X-Forwarded-*: most requests) goes as received,
 * with the relay's fields inserted before its blank line: the parser has validated every byte of it,
 * and re-serialising each field cost ~3 × as much for a browser's head. The only difference from a
 * rewritten head is the whitespace around values, which HTTP ignores (RFC 9112 §5).
 */
export function forwardRequestHead(head: RequestHead, ctx: ForwardingContext): Buffer {
  if (!head.hasFieldIn(FORWARDING_FIELDS)) {
    // Without a Connection field a head asks for no upgrade, and HTTP/1.0 for no keep-alive. The
    // parser has held Host to URI host characters, so it cannot inject a line.
    const text = head.text
    const close = head.keepAlive ? '' : 'Connection: close\r\n'
    const forwardedHost = head.host === undefined ? '' : `X-Forwarded-Host: ${head.host}\r\n`
    return Buffer.from(`${text.slice(0, text.length - 2)}${close}${ctx.forwardedLines}${forwardedHost}\r\n`, 'latin1')
  }
  const headers = rewriteRequestHeaders(head, ctx)
  return serializeRequestHead({ method: head.method, target: head.target, versionMinor: head.versionMinor, headers })
}

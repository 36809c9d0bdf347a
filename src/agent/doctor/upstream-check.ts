import type { ListenAddress } from '../../config/listen-address.ts'
import { fail, ok, warn, type Finding } from './doctor-check.ts'
import type { UpstreamAnswer } from './upstream-probe.ts'

const REDIRECTS = new Set([301, 302, 303, 307, 308])

const PLAIN_HTTP_FIX =
  'the agent speaks plain HTTP to the upstream: point --upstream at a plain-HTTP connector of the app (add one on a free port, e.g. a second Connector in Tomcat\'s server.xml); traffic through the tunnel is encrypted anyway'

export function hostPort(target: ListenAddress): string {
  return `${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`
}

/** Where a Location points, resolved against the request it answered; undefined when unusable. */
export function resolveLocation(location: string, hostHeader: string): URL | undefined {
  try {
    return new URL(location, `http://${hostHeader}/`)
  } catch {
    return undefined
  }
}

/** Check 1: the verdict on what the upstream port did with `GET /` (see askUpstream). */
export function judgeUpstream(target: ListenAddress, hostHeader: string, answer: UpstreamAnswer, timeoutMs: number): Finding {
  const where = hostPort(target)
  switch (answer.kind) {
    case 'unreachable':
      return answer.code === 'ECONNREFUSED'
        ? fail(`connection refused: nothing listens on ${where}`, `start the app, or point --upstream at the port of its plain-HTTP connector`, 'TUN_ERR_UPSTREAM_REFUSED')
        : fail(`cannot connect to ${where}: ${answer.code}`, 'check the host and port given with --upstream', 'TUN_ERR_UPSTREAM_REFUSED')
    case 'timeout':
      return answer.connected
        ? fail(`${where} accepted the connection but sent no HTTP answer to GET / within ${timeoutMs} ms`, PLAIN_HTTP_FIX, 'TUN_ERR_UPSTREAM_TIMEOUT')
        : fail(`no answer to the connection to ${where} within ${timeoutMs} ms`, 'check that the upstream host is reachable from this node and that no firewall drops the connection', 'TUN_ERR_UPSTREAM_TIMEOUT')
    case 'tls':
      return fail(`${where} speaks TLS (HTTPS), not plain HTTP`, PLAIN_HTTP_FIX, 'TUN_ERR_UPSTREAM_BAD_RESPONSE')
    case 'closed':
      return fail(`${where} closed the connection without answering GET /`, PLAIN_HTTP_FIX, 'TUN_ERR_UPSTREAM_FAILED')
    case 'not-http':
      return fail(`${where} answered GET / with something that is not HTTP ("${answer.firstBytes}")`, PLAIN_HTTP_FIX, 'TUN_ERR_UPSTREAM_BAD_RESPONSE')
    case 'http':
      return judgeHttp(where, hostHeader, answer.status, answer.location)
  }
}

function judgeHttp(where: string, hostHeader: string, status: number, location: string | undefined): Finding {
  const to = location === undefined ? undefined : resolveLocation(location, hostHeader)
  const seen = `${where} answers GET / with HTTP ${status}${location === undefined ? '' : ` (Location: ${location})`}`
  if (REDIRECTS.has(status) && to?.protocol === 'https:') {
    // The port's own host with https is a transport redirect (Tomcat's CONFIDENTIAL constraint):
    // every request through the tunnel would bounce. Another host is the app's base URL at work.
    if (to.hostname.toLowerCase() === new URL(`http://${hostHeader}/`).hostname.toLowerCase()) {
      return fail(
        `${seen}: it redirects to HTTPS`,
        'point --upstream at the plain-HTTP port, or remove the HTTPS redirection from the app (in Tomcat, the CONFIDENTIAL security-constraint in web.xml); traffic through the tunnel is encrypted anyway',
      )
    }
    return ok(`${seen}: a redirect to the app's base URL, compared in check 7`)
  }
  if (status >= 500) return warn(`${seen}: the app answers but reports an error`, 'look at the app\'s own log; the tunnel passes this answer on as it is')
  return ok(seen)
}

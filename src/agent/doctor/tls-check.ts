import type { X509Certificate } from 'node:crypto'
import type { Socket } from 'node:net'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import type { SecurityKey } from '../../protocol/index.ts'
import { spkiPin } from '../../transport/certificate-pin.ts'
import { tlsPolicy } from '../../transport/tls-policy.ts'
import { fail, ok, type Finding } from './doctor-check.ts'
import { openServerPath, type ServerRoute } from './server-reach-checks.ts'

export interface TlsTrust {
  /** PEM bundle from --ca-file, trusted instead of the system CAs when the key has no pin */
  ca: string | undefined
  /** the file it came from, for messages */
  caFile: string | undefined
}

const INSPECTION_HINT = 'if a TLS-inspecting proxy or firewall sits in between, exempt the tunnel server from inspection'

/**
 * Check 4: a TLS handshake with the server, judged as the agent judges it (src/transport/agent-dial.ts):
 * by the pin when the key carries one, else by the CA file or the system CAs with the host name.
 * Here the certificate is always received, so a failure can say what was presented instead.
 */
export async function checkServerTls(route: ServerRoute, key: SecurityKey, trust: TlsTrust, timeoutMs: number): Promise<Finding> {
  let path: Socket
  try {
    path = await openServerPath(route, timeoutMs)
  } catch (err) {
    return fail(`cannot reach ${route.authority} for the TLS handshake: ${(err as Error).message}`, 'see check 3: the connection worked a moment ago', 'TUN_ERR_SERVER_UNREACHABLE')
  }
  const pinned = key.certificatePin !== undefined
  const outcome = await handshake(route, path, pinned ? undefined : trust.ca, timeoutMs)
  if ('error' in outcome) {
    return fail(
      `the TLS handshake with ${route.authority} failed: ${outcome.error}`,
      `check that the key's server URL (${key.serverUrl}) is the tunnel server's HTTPS address; ${INSPECTION_HINT}`,
      'TUN_ERR_SERVER_UNREACHABLE',
    )
  }
  const { peer, authorizationError } = outcome
  const who = describe(peer)
  if (pinned) {
    const presented = spkiPin(peer)
    if (presented === key.certificatePin) return ok(`the certificate (${who}) matches the pin in the key`)
    return fail(
      `the server presented a certificate (${who}) with pin ${presented}; the key expects pin ${key.certificatePin}`,
      `this is not the certificate the key was made for: if the server's certificate was replaced, create a new tunnel to get a key with its pin; ${INSPECTION_HINT}`,
      'TUN_ERR_TLS_CERT_MISMATCH',
    )
  }
  const trusted = trust.caFile === undefined ? 'the system CAs' : `the CAs in ${trust.caFile}`
  if (authorizationError === undefined) return ok(`the certificate (${who}) verifies against ${trusted} for ${route.host}`)
  const fix = /ALTNAME|HOSTNAME/i.test(authorizationError)
    ? `the certificate does not name ${route.host}: the server needs a certificate for the name in the key's server URL`
    : `if the server's certificate comes from a private CA, give that CA with --ca-file; ${INSPECTION_HINT} (or give the inspecting proxy's CA with --ca-file)`
  return fail(`the certificate (${who}) does not verify against ${trusted}: ${authorizationError}`, fix, 'TUN_ERR_TLS_CERT_MISMATCH')
}

type Handshake = { peer: X509Certificate; authorizationError: string | undefined } | { error: string }

function handshake(route: ServerRoute, path: Socket, ca: string | undefined, timeoutMs: number): Promise<Handshake> {
  return new Promise((resolve) => {
    const socket: TLSSocket = tlsConnect({
      socket: path,
      host: route.host,
      ...(/^[\d.]+$|:/.test(route.host) ? {} : { servername: route.host }),
      ...tlsPolicy,
      ALPNProtocols: ['http/1.1'],
      // Verified below, so that a refusal can still show the certificate.
      rejectUnauthorized: false,
      ...(ca === undefined ? {} : { ca }),
    })
    const done = (result: Handshake): void => {
      clearTimeout(timer)
      socket.removeAllListeners()
      socket.on('error', () => {})
      socket.destroy()
      path.destroy()
      resolve(result)
    }
    const timer = setTimeout(() => done({ error: `no TLS answer within ${timeoutMs} ms` }), timeoutMs)
    socket.once('secureConnect', () => {
      const peer = socket.getPeerX509Certificate()
      if (peer === undefined) return done({ error: 'the server presented no certificate' })
      const err = socket.authorizationError as Error | string | null | undefined
      done({ peer, authorizationError: err === null || err === undefined ? undefined : typeof err === 'string' ? err : ((err as NodeJS.ErrnoException).code ?? err.message) })
    })
    socket.once('error', (err: NodeJS.ErrnoException) => done({ error: err.code ?? err.message }))
    socket.once('close', () => done({ error: 'the connection closed during the handshake' }))
  })
}

function describe(cert: X509Certificate): string {
  const cn = (dn: string): string => /(?:^|\n)CN=([^\n]*)/.exec(dn)?.[1] ?? dn.replace(/\n/g, ', ')
  const issuer = cert.issuer === cert.subject ? 'self-signed' : `issued by ${cn(cert.issuer)}`
  return `subject ${cn(cert.subject)}, ${issuer}, valid until ${new Date(cert.validTo).toISOString().slice(0, 10)}`
}

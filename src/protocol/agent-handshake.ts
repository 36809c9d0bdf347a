import { TunnelError } from '../errors/index.ts'
import { SECRET_BYTES, isValidTunnelId } from './security-key.ts'

/**
 * The agent's connect request (an ordinary HTTP/1.1 upgrade, so it shares port 443 with the console
 * and passes HTTP-aware load balancers) and the server's 101 answer.
 */
export const AGENT_CONNECT_PATH = '/agent/v1/connect'
export const AGENT_UPGRADE_TOKEN = 'apptunnel/2'
export const AGENT_AUTH_SCHEME = 'Tunnel'

export const agentHeaders = {
  nodeId: 'x-apptunnel-node-id',
  instance: 'x-apptunnel-instance',
  version: 'x-apptunnel-agent-version',
  sessionId: 'x-apptunnel-session-id',
  tunnelName: 'x-apptunnel-tunnel-name',
  orgName: 'x-apptunnel-org-name',
  pingIntervalMs: 'x-apptunnel-ping-interval-ms',
  pingTimeoutMs: 'x-apptunnel-ping-timeout-ms',
  applicationLinkUrl: 'x-apptunnel-application-link-url',
} as const

const NODE_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/

export function formatAgentAuthorization(tunnelId: string, secret: Buffer): string {
  return `${AGENT_AUTH_SCHEME} ${tunnelId}.${secret.toString('base64url')}`
}

export interface AgentCredentials {
  tunnelId: string
  secret: Buffer
}

export function parseAgentAuthorization(value: string | undefined): AgentCredentials {
  if (value === undefined) throw new TunnelError('TUN_ERR_HANDSHAKE_BAD_REQUEST', 'Authorization header is missing')
  const space = value.indexOf(' ')
  // Auth schemes are case-insensitive (RFC 9110 §11.1).
  if (space < 0 || value.slice(0, space).toLowerCase() !== AGENT_AUTH_SCHEME.toLowerCase()) {
    throw new TunnelError('TUN_ERR_HANDSHAKE_BAD_REQUEST', `Authorization must use the "${AGENT_AUTH_SCHEME}" scheme`)
  }
  const token = value.slice(space + 1).trim()
  const dot = token.indexOf('.')
  const tunnelId = dot < 0 ? '' : token.slice(0, dot)
  const secret = Buffer.from(dot < 0 ? '' : token.slice(dot + 1), 'base64url')
  if (!isValidTunnelId(tunnelId) || secret.length !== SECRET_BYTES) {
    throw new TunnelError('TUN_ERR_KEY_REJECTED', 'security key was rejected: credentials are malformed')
  }
  return { tunnelId, secret }
}

export function parseNodeId(value: string | undefined): string {
  if (value === undefined || !NODE_ID_PATTERN.test(value)) {
    throw new TunnelError('TUN_ERR_HANDSHAKE_BAD_REQUEST', `${agentHeaders.nodeId} must be 1-64 characters of A-Z a-z 0-9 . _ -`)
  }
  return value
}

/** What the server tells a freshly connected agent in its 101 answer. */
export interface SessionWelcome {
  sessionId: string
  tunnelName: string
  orgName: string
  pingIntervalMs: number
  pingTimeoutMs: number
  /** where callers reach the tunnel; absent from servers older than the header */
  applicationLinkUrl?: string | undefined
}

/** A lone UTF-16 surrogate would make encodeURIComponent throw; it becomes U+FFFD instead. */
export function wellFormed(text: string): string {
  return text.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd')
}

export function formatWelcomeHeaders(w: SessionWelcome): Record<string, string> {
  return {
    [agentHeaders.sessionId]: w.sessionId,
    [agentHeaders.tunnelName]: encodeURIComponent(wellFormed(w.tunnelName)),
    [agentHeaders.orgName]: encodeURIComponent(wellFormed(w.orgName)),
    [agentHeaders.pingIntervalMs]: String(w.pingIntervalMs),
    [agentHeaders.pingTimeoutMs]: String(w.pingTimeoutMs),
    ...(w.applicationLinkUrl === undefined ? {} : { [agentHeaders.applicationLinkUrl]: encodeURIComponent(wellFormed(w.applicationLinkUrl)) }),
  }
}

function headerInt(headers: Record<string, string | string[] | undefined>, name: string, min: number, max: number): number {
  const raw = headers[name]
  const n = typeof raw === 'string' && /^\d{1,9}$/.test(raw) ? Number(raw) : NaN
  if (!(n >= min && n <= max)) throw new TunnelError('TUN_ERR_HANDSHAKE_BAD_REQUEST', `server sent an invalid ${name}`)
  return n
}

function headerText(headers: Record<string, string | string[] | undefined>, name: string): string {
  const raw = headers[name]
  if (typeof raw !== 'string') throw new TunnelError('TUN_ERR_HANDSHAKE_BAD_REQUEST', `server did not send ${name}`)
  try {
    return decodeURIComponent(raw)
  } catch {
    throw new TunnelError('TUN_ERR_HANDSHAKE_BAD_REQUEST', `server sent an invalid ${name}`)
  }
}

export function parseWelcomeHeaders(headers: Record<string, string | string[] | undefined>): SessionWelcome {
  return {
    sessionId: headerText(headers, agentHeaders.sessionId),
    tunnelName: headerText(headers, agentHeaders.tunnelName),
    orgName: headerText(headers, agentHeaders.orgName),
    pingIntervalMs: headerInt(headers, agentHeaders.pingIntervalMs, 100, 600_000),
    pingTimeoutMs: headerInt(headers, agentHeaders.pingTimeoutMs, 100, 600_000),
    ...(headers[agentHeaders.applicationLinkUrl] === undefined ? {} : { applicationLinkUrl: headerText(headers, agentHeaders.applicationLinkUrl) }),
  }
}

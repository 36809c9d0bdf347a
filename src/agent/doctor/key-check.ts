import { isTunnelError, type TunnelError } from '../../errors/index.ts'
import type { ControlMessage, SecurityKey, SessionWelcome } from '../../protocol/index.ts'
import { SessionMux, type RelayStream } from '../../transport/session-mux/index.ts'
import { dialAgentSession, type DialedSession } from '../../transport/agent-dial.ts'
import type { ProxySettings } from '../../transport/proxy-settings.ts'
import { VERSION } from '../../version.ts'
import { fail, ok, type Finding } from './doctor-check.ts'

export interface KeyCheckOptions {
  /** the node id the server records for this short session */
  nodeId: string
  ca: string | undefined
  proxy: ProxySettings | undefined
  timeoutMs: number
}

/**
 * Check 5: the real connect handshake. The server has no "is this key valid" question short of a
 * session (and one should not be added only for this), so a session is opened and closed again
 * at once, the way an agent leaving gracefully closes one: the server logs an ordinary disconnect.
 */
export async function checkKey(key: SecurityKey, options: KeyCheckOptions): Promise<{ finding: Finding; welcome: SessionWelcome | undefined }> {
  let dialed
  try {
    dialed = await dialAgentSession(key, {
      nodeId: options.nodeId,
      instance: 'apptunnel doctor',
      agentVersion: VERSION,
      ca: options.ca,
      proxy: options.proxy,
      connectTimeoutMs: options.timeoutMs,
    })
  } catch (err) {
    if (!isTunnelError(err)) throw err
    return { finding: refused(err), welcome: undefined }
  }
  await closeGracefully(dialed, options.timeoutMs)
  const w = dialed.welcome
  const link = w.applicationLinkUrl === undefined ? '' : `, application link URL ${w.applicationLinkUrl}`
  return {
    finding: ok(`the server accepted the key of tunnel "${w.tunnelName}" (${w.orgName})${link}; a session was opened and closed again at once`),
    welcome: w,
  }
}

/**
 * Speaks just enough of the agent's side of the session for the server to set it up, then leaves
 * with GOAWAY. Closing the socket right after the 101 instead would fail the server's session
 * setup, which it logs as an error.
 */
function closeGracefully({ socket, welcome, input }: DialedSession, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const mux = new SessionMux(socket, {
      input,
      role: 'agent',
      streamWindowBytes: 64 * 1024,
      maxStreams: 1,
      pingIntervalMs: welcome.pingIntervalMs,
      pingTimeoutMs: welcome.pingTimeoutMs,
      pingTimeoutMessage: 'the tunnel server stopped answering keepalive pings',
    })
    const timer = setTimeout(() => mux.destroy(), timeoutMs)
    mux.once('close', () => {
      clearTimeout(timer)
      resolve()
    })
    // A caller routed here in the moment the session is live is aborted before it is confirmed:
    // the server replays it on another session of the tunnel (docs/onprem.md).
    mux.on('stream', (stream: RelayStream) => stream.abort())
    mux.on('control', (m: ControlMessage) => {
      // "ready" means the server has registered the session: leave now.
      if (m.t !== 'ready') return
      mux.goaway()
      mux.end()
    })
  })
}

function refused(err: TunnelError): Finding {
  switch (err.code) {
    case 'TUN_ERR_KEY_REJECTED':
      return fail(err.message, 'add the right security key again (apptunnel key add, or --key); if it is lost, delete the tunnel in the cloud console and create a new one', err.code)
    case 'TUN_ERR_TUNNEL_NOT_FOUND':
      return fail(err.message, 'the tunnel was deleted (or never existed on this server): create a new tunnel in the cloud console and add its key', err.code)
    case 'TUN_ERR_HANDSHAKE_RATE_LIMITED':
      return fail(err.message, 'too many wrong keys came from this address lately: wait a minute, then add the right key', err.code)
    case 'TUN_ERR_SESSION_LIMIT':
      return fail(err.message, 'the tunnel has as many sessions as the server accepts: lower --sessions on the agent nodes or stop one', err.code)
    case 'TUN_ERR_HANDSHAKE_VERSION':
      return fail(err.message, 'this agent and the tunnel server speak different protocol versions: upgrade the older one', err.code)
    case 'TUN_ERR_SERVER_UNAVAILABLE':
      return fail(err.message, 'the server is restarting or overloaded: run the doctor again in a minute', err.code)
    default:
      return fail(err.message, 'the earlier checks passed, so the connection reached the server: look at what it answered, above, and at the server log', err.code)
  }
}

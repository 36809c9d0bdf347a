/**
 * What an admin can do about a tunnel's status: one table, read by the on-prem status (the instance
 * console and `apptunnel key status` print the same hint) and by the cloud console's tunnel views.
 * A hint follows the cause behind the status (the error code a node reported, or what the status
 * logic found), not the status alone: ERROR because the tunnel was deleted and ERROR because the
 * key's secret is wrong call for different actions. Hints name the real tunnel server (host and
 * port from the key), never a default port.
 */

/** Causes the status logic finds itself, besides the TUN_ERR_… codes nodes report. */
export type StatusCause =
  | 'no-key'
  | 'no-node-running'
  | 'nodes-down'
  | 'nodes-connecting'
  | 'connected'
  | 'cloud-no-key-added'
  | 'cloud-no-agent'
  | 'cloud-connected'

export interface HintFacts {
  /** the status shown beside the hint (null: the instance has no key) */
  status: string | null
  /** a StatusCause, or the TUN_ERR_… code behind the status; null when nothing more is known */
  cause: StatusCause | string | null
  /** the tunnel server's agent endpoint, from the key (https://host:port) */
  serverUrl?: string | undefined
}

interface Endpoint {
  host: string
  port: string
  /** "host port N", as a firewall rule is written */
  rule: string
}

function endpointOf(serverUrl: string | undefined): Endpoint {
  try {
    if (serverUrl === undefined) throw new Error('none')
    const u = new URL(serverUrl)
    const port = u.port === '' ? (u.protocol === 'http:' ? '80' : '443') : u.port
    const host = u.hostname
    return { host, port, rule: `${host} on port ${port}` }
  } catch {
    return { host: 'the tunnel server', port: 'its port', rule: 'the tunnel server on the port in the security key' }
  }
}

type Row = readonly [cause: StatusCause | string, hint: (e: Endpoint) => string]

/** First the specific causes (error codes), then each status's own cause. */
const TABLE: readonly Row[] = [
  ['no-key', () => 'Create a tunnel in the cloud console, then add its security key here (Add security key, or apptunnel key add KEY).'],
  ['no-node-running', () => 'No agent node of this instance is running. Start apptunnel agent with this instance database on each node (apptunnel key status lists the nodes that have run).'],
  ['TUN_ERR_TUNNEL_NOT_FOUND', () => 'The tunnel server rejected the security key: its tunnel was deleted in the cloud console (or never existed). Create a new tunnel there, then remove this key and add the new one.'],
  ['TUN_ERR_KEY_REJECTED', (e) => `The tunnel server at ${e.host}:${e.port} rejected the security key: it is not the current key of its tunnel. Check that the key was copied whole, or create a new tunnel in the cloud console and add its key.`],
  ['TUN_ERR_KEY_SEALED', () => 'The stored key is encrypted and a node cannot open it: start every node with the same --key-encryption-file the key was added with.'],
  ['TUN_ERR_KEY_MALFORMED', () => 'The stored security key is malformed: remove it and add the key again, copied whole from the cloud console.'],
  ['TUN_ERR_TLS_CERT_MISMATCH', (e) => `The server at ${e.host}:${e.port} presented a certificate that does not match the one the key pins: a TLS-inspecting proxy sits in between, or the server's certificate changed. Let the nodes reach ${e.rule} without TLS inspection, or create a new tunnel to get a key with the new certificate.`],
  ['TUN_ERR_PROXY_AUTH_REQUIRED', () => 'The HTTP proxy wants a user name and password (407): put them in the nodes\' --proxy URL (http://user:password@proxy:port).'],
  ['TUN_ERR_PROXY_REFUSED', (e) => `The HTTP proxy refused to connect the nodes to ${e.host}:${e.port}: ask for ${e.rule} to be allowed through the proxy.`],
  ['TUN_ERR_SERVER_UNREACHABLE', (e) => `The nodes cannot reach the tunnel server: allow outgoing connections from every node to ${e.rule} (or set --proxy), and check that the server is running.`],
  ['TUN_ERR_SERVER_UNAVAILABLE', (e) => `The tunnel server at ${e.host}:${e.port} is not taking sessions now (it is starting or shutting down); the nodes retry by themselves.`],
  ['TUN_ERR_HANDSHAKE_VERSION', () => 'The tunnel server does not support this agent version: install the apptunnel version the server runs on every node.'],
  ['TUN_ERR_HANDSHAKE_RATE_LIMITED', () => 'The tunnel server saw too many failed connects from this address and slows them down; the nodes retry by themselves, and a valid key still connects.'],
  ['TUN_ERR_SESSION_LIMIT', () => 'The tunnel server already holds as many sessions of this tunnel as it accepts: lower --sessions on the nodes, or stop nodes you do not need.'],
  ['TUN_ERR_SESSION_LOST', (e) => `The connection to ${e.host}:${e.port} was lost; the nodes reconnect by themselves. If they stay unavailable, check that the server is running and that outgoing connections to ${e.rule} are allowed; if it keeps happening, look for a proxy or firewall that closes long-lived connections.`],
  ['TUN_ERR_SESSION_PROTOCOL', () => 'A session broke the protocol and was dropped; the nodes reconnect by themselves. If it keeps happening, check for a proxy that alters the connection, and that nodes and server run the same version.'],
  ['nodes-down', () => 'Some nodes are not connected to the tunnel. Start the nodes that are down (each one\'s reason is on the Cluster nodes page, or in apptunnel key status), or remove a node that is gone for good.'],
  ['nodes-connecting', (e) => `The nodes are connecting to ${e.host}:${e.port}; this takes a few seconds. If it lasts, the Cluster nodes page (or apptunnel key status) shows each node's last attempt.`],
  ['connected', () => 'The tunnel is connected and working. Create the application link that uses its application link URL if you have not yet.'],
  ['cloud-no-key-added', () => 'Add the security key to the on-prem instance: in its instance console (Add security key), or with apptunnel key add KEY.'],
  ['cloud-no-agent', (e) => `On the on-prem instance, check that the agent nodes are running (apptunnel key status) and can reach ${e.rule}.`],
  ['cloud-connected', () => 'Cloud products reach the instance through the application link URL.'],
]

/** When nothing more specific is known: by status. */
const BY_STATUS: Readonly<Record<string, (e: Endpoint) => string>> = {
  CONNECTED: (e) => hintOf('connected', e),
  CONNECTING: (e) => hintOf('nodes-connecting', e),
  LIMITED: (e) => hintOf('nodes-down', e),
  UNAVAILABLE: (e) => `The nodes cannot keep a session with the tunnel server at ${e.host}:${e.port}: each node's reason on the Cluster nodes page (or in apptunnel key status) says why.`,
  ERROR: () => 'The tunnel server refused the nodes\' connection: each node\'s reason on the Cluster nodes page (or in apptunnel key status) says why.',
  INCOMPLETE: (e) => hintOf('cloud-no-key-added', e),
}

function hintOf(cause: string, e: Endpoint): string {
  return TABLE.find(([c]) => c === cause)![1](e)
}

/** The causes the table knows (for tests and docs). */
export const HINT_CAUSES: readonly string[] = TABLE.map(([c]) => c)

/** The hint for a status and its cause. */
export function statusHint(facts: HintFacts): string {
  const e = endpointOf(facts.serverUrl)
  if (facts.status === null) return hintOf('no-key', e)
  const row = facts.cause === null ? undefined : TABLE.find(([c]) => c === facts.cause)
  if (row !== undefined) return row[1](e)
  return (BY_STATUS[facts.status] ?? BY_STATUS.ERROR!)(e)
}

import { resolve } from 'node:path'
import { z } from 'zod'
import { durationMs, listenAddressString, validateConfig, withCrossFieldChecks, type ConfigIssue } from './config-validation.ts'
import { decodeSecurityKey, type SecurityKey } from '../protocol/index.ts'
import { parseListenAddress, type ListenAddress } from './listen-address.ts'
import { clusterConfigShape, clusterSettingsFrom, type ClusterSettings } from './cluster-config.ts'
import { proxySettingsFrom, type ProxySettings } from '../transport/proxy-settings.ts'

const duration = (def: number) => durationMs(z, def)

/** Every option of `apptunnel agent`, with defaults and units in the names. */
const agentOptions = z
  .object({
    /** the security key; optional with a database, where `apptunnel key add` stores it for every node */
    key: z.string().min(1, 'the security key must not be empty').optional(),
    /** the on-prem app's plain-HTTP upstream port, HOST:PORT */
    upstream: listenAddressString(z, 'dialed'),
    dataDir: z.string().min(1).optional(),
    database: z.string().min(1).optional(),
    /** HTTPS listener of the on-prem admin console, HOST:PORT; off unless given (needs database and dataDir) */
    consoleListen: listenAddressString(z).optional(),
    /** PEM certificate and key of the console (default: self-signed, kept in <dataDir>/console) */
    consoleTlsCertFile: z.string().min(1).optional(),
    consoleTlsKeyFile: z.string().min(1).optional(),
    /** a console session unused this long ends (30 min) */
    consoleSessionIdleMs: duration(30 * 60_000),
    /** a console session ends this long after sign-in, used or not (12 h) */
    consoleSessionMaxMs: duration(12 * 3600_000),
    /** console listener: a TLS handshake must finish within this time */
    consoleTlsHandshakeTimeoutMs: duration(10_000),
    /** console listener: a request head must arrive within this time of the connection or the last request */
    consoleHeadTimeoutMs: duration(20_000),
    /** console listener: a whole request, body included, must arrive within this time */
    consoleRequestTimeoutMs: duration(60_000),
    /** stable id of this node; default: kept in the data directory, else the host name */
    nodeId: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, '1-64 characters of A-Z a-z 0-9 . _ -').optional(),
    instance: z.string().max(200).default(''),
    /** PEM file of CAs to trust instead of the system's (keys of self-signed servers carry a pin instead) */
    caFile: z.string().optional(),
    /** HTTP CONNECT proxy to the server, http://[user:password@]host:port; unset or '': direct (src/transport/proxy-settings.ts) */
    proxy: z.string().optional(),
    /** NO_PROXY list: servers dialed directly although a proxy is set (commas, *, domains, addresses, CIDR, :port) */
    noProxy: z.string().optional(),
    connectTimeoutMs: duration(10_000),
    upstreamConnectTimeoutMs: duration(10_000),
    maxStreams: z.number().int().min(1).max(100_000).default(1_000),
    /** sessions this node keeps to the server; the server spreads callers over all of them */
    sessions: z.number().int().min(1).max(16).default(2),
    /** when the server runs replicas: keep sessions to at most this many of them; default all (docs/scaling.md) */
    replicas: z.number().int().min(1).max(32).optional(),
    /** a node not yet connected shows CONNECTING, not UNAVAILABLE, this long after it got its key */
    connectGraceMs: duration(30_000),
    /** how often a node re-reads the instance key (key add / key remove reach every node this fast) */
    keyPollMs: duration(1_000),
    /** file holding the 32-byte key the instance's security key is encrypted with at rest */
    keyEncryptionFile: z.string().min(1).optional(),
    /** how often a node writes its status row; silence of 3 intervals shows the node as down */
    nodeHeartbeatMs: duration(5_000),
    drainTimeoutMs: duration(10_000),
    reconnectInitialMs: duration(500),
    reconnectMaxMs: duration(30_000),
    rejectedRetryMs: duration(5 * 60_000),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    /** plain HTTP listener for /metrics, /healthz and /readyz, HOST:PORT; off when absent */
    metricsListen: listenAddressString(z).optional(),
    /** metrics listener: a request head must arrive within this time of the connection or the last request */
    metricsHeadTimeoutMs: duration(10_000),
    /** metrics listener: a whole request, body included, must arrive within this time */
    metricsRequestTimeoutMs: duration(15_000),
    // --- cluster bus (nodes of one on-prem instance sharing its database; src/cluster/) ---
    ...clusterConfigShape,
  })
  .strict()

/** Options that need each other; see withCrossFieldChecks for why the values are looked at untyped. */
function agentCrossFieldIssues(c: Readonly<Record<string, unknown>>): ConfigIssue[] {
  const issues: ConfigIssue[] = []
  const given = (name: string) => c[name] !== undefined
  if (!given('key') && !given('database')) {
    issues.push({ field: 'key', message: 'a security key is required (--key, --key-file or APPTUNNEL_KEY), or an instance database (--database) to read it from' })
  }
  if (given('database') && !given('dataDir') && !given('nodeId')) {
    // A fresh id at every start would leave a "stopped" node behind each restart: LIMITED for ever.
    issues.push({ field: 'dataDir', message: 'a node of an instance needs a stable id: pass --data-dir DIR (it keeps the id) or --node-id ID' })
  }
  if (given('clusterListen') && !given('database')) {
    issues.push({ field: 'database', message: 'clusterListen needs the instance database the nodes share (--database URL or SQLite file)' })
  }
  if (given('consoleListen')) {
    // The console administers the instance, which lives in its database: without one there is nothing to show.
    if (!given('database')) issues.push({ field: 'consoleListen', message: 'the console needs the instance database (--database URL or SQLite file)' })
    else if (!given('dataDir')) issues.push({ field: 'consoleListen', message: 'the console needs --data-dir (it keeps its certificate and the first admin password there)' })
    if (given('consoleTlsCertFile') !== given('consoleTlsKeyFile')) issues.push({ field: 'consoleTlsCertFile', message: 'the console certificate and key must be given together' })
  }
  return issues
}

export const agentConfigSchema = withCrossFieldChecks(agentOptions, agentCrossFieldIssues)

export type AgentConfigInput = z.input<typeof agentConfigSchema>

/** The on-prem console of a node, when consoleListen is set. */
export interface AgentConsoleSettings {
  listen: ListenAddress
  dataDir: string
  tlsCertFile: string | undefined
  tlsKeyFile: string | undefined
  session: { idleTimeoutMs: number; maxAgeMs: number }
  /** slow clients (slowloris): how long a TLS handshake, a request head and a whole request may take */
  timeouts: { tlsHandshakeTimeoutMs: number; headTimeoutMs: number; requestTimeoutMs: number }
}

export interface AgentConfig extends Omit<z.output<typeof agentConfigSchema>, 'key' | 'upstream' | 'proxy' | 'noProxy' | 'metricsListen' | 'consoleListen'> {
  /** the admin console settings, or undefined when consoleListen is not set */
  console: AgentConsoleSettings | undefined
  /** undefined: the key is read from the instance database */
  key: SecurityKey | undefined
  /** the key as given, to seed the instance database with */
  keyText: string | undefined
  upstream: ListenAddress
  /** the metrics and health listener, or undefined when metricsListen is not set */
  metricsListen: ListenAddress | undefined
  /** the cluster bus settings, or undefined when clusterListen is not set */
  cluster: ClusterSettings | undefined
  /** the proxy and its NO_PROXY list, or undefined when no proxy is set */
  proxy: ProxySettings | undefined
}

export function loadAgentConfig(input: AgentConfigInput): Readonly<AgentConfig> {
  const c = validateConfig(agentConfigSchema, input, 'agent')
  const upstream = parseListenAddress(c.upstream, 'upstream')
  const cluster = clusterSettingsFrom(c)
  const { noProxy, consoleListen, ...rest } = c
  const proxy = proxySettingsFrom(c.proxy, noProxy)
  return Object.freeze({
    ...rest,
    ...(c.dataDir === undefined ? {} : { dataDir: resolve(c.dataDir) }),
    key: c.key === undefined ? undefined : decodeSecurityKey(c.key),
    keyText: c.key?.trim(),
    upstream,
    metricsListen: c.metricsListen === undefined ? undefined : parseListenAddress(c.metricsListen, 'metricsListen'),
    cluster,
    proxy,
    console: consoleSettingsFrom(c),
  })
}

function consoleSettingsFrom(c: z.output<typeof agentConfigSchema>): AgentConsoleSettings | undefined {
  // agentCrossFieldIssues has made sure the database and the data directory are there.
  if (c.consoleListen === undefined || c.dataDir === undefined) return undefined
  return {
    listen: parseListenAddress(c.consoleListen, 'consoleListen'),
    dataDir: resolve(c.dataDir),
    tlsCertFile: c.consoleTlsCertFile,
    tlsKeyFile: c.consoleTlsKeyFile,
    session: { idleTimeoutMs: c.consoleSessionIdleMs, maxAgeMs: c.consoleSessionMaxMs },
    timeouts: { tlsHandshakeTimeoutMs: c.consoleTlsHandshakeTimeoutMs, headTimeoutMs: c.consoleHeadTimeoutMs, requestTimeoutMs: c.consoleRequestTimeoutMs },
  }
}

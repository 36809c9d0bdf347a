import { resolve } from 'node:path'
import { z } from 'zod'
import { durationMs, listenAddressString, validateConfig, withCrossFieldChecks, type ConfigIssue } from './config-validation.ts'
import { decodeSecurityKey, type SecurityKey } from '../protocol/index.ts'
import { parseListenAddress, type ListenAddress } from './listen-address.ts'
import { clusterConfigShape, clusterOptionDocs, clusterSettingsFrom, type ClusterSettings } from './cluster-config.ts'
import type { OptionDocs } from './config-options.ts'
import { logLevelOptionDocs, logLevelShape, metricsConfigShape, metricsOptionDocs } from './metrics-config.ts'
import { proxySettingsFrom, type ProxySettings } from '../transport/proxy-settings.ts'

const duration = (def: number) => durationMs(z, def)

/** Every option of `apptunnel agent`, with defaults and units in the names. */
const agentOptions = z
  .object({
    key: z.string().min(1, 'the security key must not be empty').optional(),
    upstream: listenAddressString(z, 'dialed'),
    dataDir: z.string().min(1).optional(),
    database: z.string().min(1).optional(),
    consoleListen: listenAddressString(z).optional(),
    consoleTlsCertFile: z.string().min(1).optional(),
    consoleTlsKeyFile: z.string().min(1).optional(),
    consoleSessionIdleMs: duration(30 * 60_000),
    consoleSessionMaxMs: duration(12 * 3600_000),
    consoleTlsHandshakeTimeoutMs: duration(10_000),
    consoleHeadTimeoutMs: duration(20_000),
    consoleRequestTimeoutMs: duration(60_000),
    nodeId: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, '1-64 characters of A-Z a-z 0-9 . _ -').optional(),
    instance: z.string().max(200).default(''),
    caFile: z.string().optional(),
    // Unset or '': direct (src/transport/proxy-settings.ts reads the URL and the list).
    proxy: z.string().optional(),
    noProxy: z.string().optional(),
    connectTimeoutMs: duration(10_000),
    upstreamConnectTimeoutMs: duration(10_000),
    maxStreams: z.number().int().min(1).max(100_000).default(1_000),
    sessions: z.number().int().min(1).max(16).default(2),
    replicas: z.number().int().min(1).max(32).optional(),
    connectGraceMs: duration(30_000),
    keyPollMs: duration(1_000),
    keyEncryptionFile: z.string().min(1).optional(),
    nodeHeartbeatMs: duration(5_000),
    drainTimeoutMs: duration(10_000),
    reconnectInitialMs: duration(500),
    reconnectMaxMs: duration(30_000),
    rejectedRetryMs: duration(5 * 60_000),
    ...logLevelShape,
    ...metricsConfigShape,
    // --- cluster bus (nodes of one on-prem instance sharing its database; src/cluster/) ---
    ...clusterConfigShape,
  })
  .strict()

/**
 * What docs/configuration.md and `apptunnel agent --help` say of each option. `flag: false` keeps
 * an option to the file and the environment: limits and timings an operator rarely sets at start.
 */
export const agentOptionDocs: OptionDocs<typeof agentOptions.shape> = {
  key: {
    value: 'key',
    description: 'The security key (`atk1_…`). Prefer `APPTUNNEL_KEY` or `--key-file` to a file others can read. Optional with `database`, where `apptunnel key add` stores it.',
  },
  upstream: { value: 'host:port', description: "The on-prem app's plain-HTTP port, HOST:PORT (port 0 refused)." },
  dataDir: { description: "Directory that keeps the node id (and the console's certificate and first password)." },
  database: { value: 'url', description: 'Instance database shared by the nodes: SQLite file or `postgres://` URL. With it the node reads the key from there.' },
  consoleListen: { description: 'HTTPS listener of the on-prem admin console, HOST:PORT; off when unset. Needs `database` and `dataDir`.' },
  consoleTlsCertFile: { description: 'PEM certificate of the console (with `consoleTlsKeyFile`); unset: self-signed, kept in the data directory.' },
  consoleTlsKeyFile: { description: 'PEM private key for `consoleTlsCertFile`.' },
  consoleSessionIdleMs: { flag: false, description: 'An on-prem console session unused this long ends (30 min).' },
  consoleSessionMaxMs: { flag: false, description: 'An on-prem console session ends this long after sign-in, used or not (12 h).' },
  consoleTlsHandshakeTimeoutMs: { flag: false, description: 'Console listener: a TLS handshake must finish within this time.' },
  consoleHeadTimeoutMs: { flag: false, description: 'Console listener: a request head must arrive within this time of the connection or the last request (408).' },
  consoleRequestTimeoutMs: {
    flag: false,
    description: 'Console listener: a whole request, body included, must arrive within this time (408); a value below `consoleHeadTimeoutMs` counts as that.',
  },
  nodeId: { description: 'Stable id of this node (1-64 of `A-Z a-z 0-9 . _ -`); unset: kept in the data directory, else the host name.' },
  instance: { value: 'name', description: 'Name of the on-prem instance shown on the server (at most 200 characters).' },
  caFile: { description: "PEM file of CAs to trust instead of the system's (keys of self-signed servers carry a pin instead)." },
  proxy: { value: 'url', description: 'HTTP CONNECT proxy to the server, `http://[user:password@]host:port`; `""` for none. Unset: `https_proxy`/`HTTPS_PROXY`.' },
  noProxy: { value: 'list', description: 'Servers dialed directly despite `proxy`: host, `.domain`, address, CIDR, `:port`, `*`. Unset: `no_proxy`/`NO_PROXY`.' },
  connectTimeoutMs: { flag: false, description: 'Deadline of a dial to the server, and of the session set-up after it.' },
  upstreamConnectTimeoutMs: { flag: false, description: 'Deadline of a connection to the upstream app (502 past it).' },
  maxStreams: { flag: false, description: 'Concurrent relay streams on one session.' },
  sessions: { description: 'Sessions this node keeps to the server; the server spreads callers over all of them.' },
  replicas: {
    description: "When the server runs replicas: keep `sessions` sessions to at most this many of them (chosen per node, so an instance's nodes spread). Unset: every replica.",
  },
  connectGraceMs: { description: 'A node not yet connected shows CONNECTING, not UNAVAILABLE, this long after it got its key.' },
  keyPollMs: { description: 'How often a node re-reads the instance key (`key add`/`key remove` reach every node this fast).' },
  keyEncryptionFile: { description: "File of the 32-byte key the instance's security key is encrypted with at rest (same file on every node)." },
  nodeHeartbeatMs: { description: 'How often a node writes its status row; silence of 3 intervals shows it as down.' },
  drainTimeoutMs: { description: 'On SIGTERM, how long in-flight requests may take to finish.' },
  reconnectInitialMs: { flag: false, description: 'First back-off after a lost or failed session; it grows up to `reconnectMaxMs`.' },
  reconnectMaxMs: { flag: false, description: 'Longest back-off between reconnect attempts.' },
  rejectedRetryMs: { flag: false, description: 'After the server rejected the key (ERROR), wait this long before trying again.' },
  ...logLevelOptionDocs,
  ...metricsOptionDocs,
  ...clusterOptionDocs,
}

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

import { join, resolve } from 'node:path'
import { z } from 'zod'
import { TunnelError } from '../errors/index.ts'
import { durationMs, listenAddressString, validateConfig, withCrossFieldChecks } from './config-validation.ts'
import { parseListenAddress, type ListenAddress } from './listen-address.ts'
import { clusterConfigShape, clusterOptionDocs, clusterSettingsFrom, type ClusterSettings } from './cluster-config.ts'
import type { OptionDocs } from './config-options.ts'
import { logLevelOptionDocs, logLevelShape, metricsConfigShape, metricsOptionDocs } from './metrics-config.ts'
import { workerCountOf, workerListenerProblems, workersOptionDocs, workersShape } from './workers-option.ts'

const duration = (def: number) => durationMs(z, def)

/** Every option of `apptunnel server`, with defaults and units in the names. */
const serverOptions = z
  .object({
    dataDir: z.string().min(1).default('.apptunnel'),
    listen: listenAddressString(z).default('127.0.0.1:8443'),
    ingressListen: listenAddressString(z).default('127.0.0.1:8080'),
    ...workersShape,
    database: z.string().min(1).optional(),
    // Agents only dial https: a key carrying another scheme could never connect.
    publicUrl: z.string().url().refine((u) => u.startsWith('https://'), 'must be an https:// URL: agents only dial the server over TLS').optional(),
    advertiseUrl: z
      .string()
      .url()
      .max(300)
      .refine((u) => u.startsWith('https://'), 'must be an https:// URL: agents only dial the server over TLS')
      .optional(),
    ingressDomain: z.string().regex(/^[a-z0-9.-]+$/i, 'a DNS name').default('localhost'),
    ingressPublicUrl: z.string().includes('{id}').optional(),
    tlsCertFile: z.string().optional(),
    tlsKeyFile: z.string().optional(),
    orgName: z.string().min(1).max(100).default('default'),
    maxTunnelsPerOrg: z.number().int().min(1).max(100_000).default(100),
    pingIntervalMs: duration(5_000),
    pingTimeoutMs: duration(5_000),
    accessRefreshMs: duration(5_000),
    drainTimeoutMs: duration(10_000),
    headTimeoutMs: duration(20_000),
    idleTimeoutMs: duration(120_000),
    upgradedIdleTimeoutMs: duration(10 * 60_000),
    upstreamResponseTimeoutMs: duration(60_000),
    bodyTimeoutMs: duration(20_000),
    bodyMinBytesPerSecond: z.number().int().min(1).max(1024 * 1024 * 1024).default(500),
    tlsHandshakeTimeoutMs: duration(10_000),
    apiHeadTimeoutMs: duration(20_000),
    apiRequestTimeoutMs: duration(60_000),
    consoleSessionIdleMs: duration(30 * 60_000),
    consoleSessionMaxMs: duration(12 * 3600_000),
    maxStreamsPerSession: z.number().int().min(1).max(100_000).default(1_000),
    replicaReadyGraceMs: duration(30_000),
    maxConnectionsPerSource: z.number().int().min(0).max(1_000_000).default(250),
    maxSessionsPerTunnel: z.number().int().min(1).max(10_000).default(64),
    maxHeadBytes: z.number().int().min(1024).max(1024 * 1024).default(16 * 1024),
    maxHeaderCount: z.number().int().min(8).max(1000).default(100),
    ...logLevelShape,
    accessLog: z.string().min(1).max(4096).optional(),
    ...metricsConfigShape,
    // --- cluster bus (replicas sharing one database; src/cluster/) ---
    ...clusterConfigShape,
    clusterNodeId: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, '1-64 characters of A-Z a-z 0-9 . _ -').optional(),
  })
  .strict()

/**
 * What docs/configuration.md and `apptunnel server --help` say of each option. `flag: false` keeps
 * an option to the file and the environment: limits and timings an operator rarely sets at start.
 */
export const serverOptionDocs: OptionDocs<typeof serverOptions.shape> = {
  dataDir: { description: 'Directory of the database, the self-signed certificate, the admin token and `server.json`.' },
  listen: { description: 'HTTPS listener of the admin API and the agent endpoint, HOST:PORT (`[v6]:PORT`; port 0 picks a free one).' },
  ingressListen: { description: 'Plain-HTTP ingress of the application link URLs, HOST:PORT. Private by default: put a proxy in front to publish it.' },
  ...workersOptionDocs,
  database: { value: 'url', description: 'SQLite file path or `postgres://` URL; unset: `apptunnel.db` in the data directory.' },
  publicUrl: { description: 'The agent endpoint as agents reach it (`https://` only); security keys carry it. Unset: `https://<listen host>:<port>`.' },
  advertiseUrl: {
    description:
      'A replica (with `clusterListen`): the `https://` URL agents dial to reach this replica directly; they learn it from the replica list and keep sessions to every replica. Unset: `publicUrl` (replicas behind one balancer URL then all advertise it). See [scaling.md](scaling.md).',
  },
  ingressDomain: { description: 'Tunnels answer at `<tunnel-id>.<ingressDomain>`.' },
  ingressPublicUrl: { value: 'template', description: 'Application link URL template when the ingress sits behind a proxy; must contain `{id}`, e.g. `https://{id}.tunnels.example.com/`.' },
  tlsCertFile: { description: 'PEM certificate of the HTTPS listener (with `tlsKeyFile`); unset: a self-signed one in the data directory.' },
  tlsKeyFile: { description: 'PEM private key for `tlsCertFile`; the two are given together.' },
  orgName: { description: 'Name of the organization created at the first start (1-100 characters).' },
  maxTunnelsPerOrg: { flag: false, description: 'Tunnels one organization may have; the next create is refused.' },
  pingIntervalMs: { description: 'Keepalive ping interval towards agents.' },
  pingTimeoutMs: { description: 'An agent session missing a ping answer this long is dropped.' },
  accessRefreshMs: { flag: false, description: 'How often linked products are re-read from the database (changes made through other replicas).' },
  drainTimeoutMs: { flag: false, description: 'On SIGTERM, how long in-flight requests may take to finish.' },
  headTimeoutMs: { description: 'Ingress: a request head must arrive within this time (408).' },
  idleTimeoutMs: { flag: false, description: 'Ingress: a caller connection idle this long is closed.' },
  upgradedIdleTimeoutMs: {
    description: 'Ingress: a connection upgraded by a 101 (WebSocket and other upgrades) with no traffic either way this long is closed, and its upstream connection with it (10 min).',
  },
  upstreamResponseTimeoutMs: { description: 'The app must start answering within this time (504).' },
  bodyTimeoutMs: { description: 'Ingress: window in which a request body must bring `bodyMinBytesPerSecond` × the window (408).' },
  bodyMinBytesPerSecond: { description: 'Slowest request body the ingress accepts.' },
  tlsHandshakeTimeoutMs: { description: 'HTTPS listener: a TLS handshake must finish within this time.' },
  apiHeadTimeoutMs: { description: 'HTTPS listener: a request head must arrive within this time of the connection or the last request.' },
  apiRequestTimeoutMs: { description: 'HTTPS listener: a whole request, body included, must arrive within this time.' },
  consoleSessionIdleMs: { flag: false, description: 'A cloud console session unused this long ends (30 min).' },
  consoleSessionMaxMs: { flag: false, description: 'A cloud console session ends this long after sign-in, used or not (12 h).' },
  maxStreamsPerSession: { flag: false, description: 'Concurrent relay streams on one agent session.' },
  replicaReadyGraceMs: {
    description:
      "Replicas only: `/readyz` is ready once this replica holds a session of every tunnel other replicas hold; after this long from start, an authenticated link to a replica that holds the rest is enough (it forwards their callers). Keeps a rolling restart from taking down a replica's only path before agents have dialled the new one. See [decisions.md](decisions.md), entry 37.",
  },
  maxConnectionsPerSource: {
    description:
      "Ingress: concurrent caller connections one source address (an IPv6 source: its /64) may hold to one tunnel on this replica; the next gets 429 `TUN_ERR_INGRESS_SOURCE_LIMIT`. 0: no cap. Behind a proxy every caller has the proxy's address: raise it or set 0 there. See [decisions.md](decisions.md), entry 36.",
  },
  maxSessionsPerTunnel: { flag: false, description: 'Agent sessions one tunnel may hold at once, over all its nodes (429 past it).' },
  maxHeadBytes: { flag: false, description: 'Largest request head the ingress accepts (431).' },
  maxHeaderCount: { flag: false, description: 'Most header lines in a request head (431).' },
  ...logLevelOptionDocs,
  accessLog: {
    value: 'file',
    description:
      'Access log: one JSON line per ingress request appended to this file (created 0600; reopened on SIGHUP), or `-` for standard output; off when unset. Fields and policy: [operations.md](operations.md#access-log).',
  },
  ...metricsOptionDocs,
  ...clusterOptionDocs,
  clusterNodeId: { description: 'Cluster node id of this replica (1-64 of `A-Z a-z 0-9 . _ -`); unset: kept in the data directory.' },
}

export const serverConfigSchema = withCrossFieldChecks(serverOptions, (c) =>
  (c['tlsCertFile'] === undefined) === (c['tlsKeyFile'] === undefined) ? [] : [{ field: 'tlsCertFile', message: 'tlsCertFile and tlsKeyFile must be given together' }],
)

export type ServerConfigInput = z.input<typeof serverConfigSchema>

export interface ServerConfig extends Omit<z.output<typeof serverConfigSchema>, 'listen' | 'ingressListen' | 'database' | 'metricsListen' | 'workers'> {
  /** server processes behind the ingress port (`auto` resolved); 1: this process alone */
  workers: number
  listen: ListenAddress
  ingressListen: ListenAddress
  /** the metrics and health listener, or undefined when metricsListen is not set */
  metricsListen: ListenAddress | undefined
  database: string
  /** the cluster bus settings, or undefined when clusterListen is not set */
  cluster: ClusterSettings | undefined
}

// Port 0: each worker binds a port of its own and advertises it to the others.
const WORKERS_LOOPBACK_BUS = '127.0.0.1:0'

/** Validates once at the edge; every problem is reported with the field that has it. */
export function loadServerConfig(input: ServerConfigInput): Readonly<ServerConfig> {
  const c = validateConfig(serverConfigSchema, input, 'server')
  const dataDir = resolve(c.dataDir)
  const workers = workerCountOf(c.workers)!
  const listen = parseListenAddress(c.listen, 'listen')
  const metricsListen = c.metricsListen === undefined ? undefined : parseListenAddress(c.metricsListen, 'metricsListen')
  // Workers are nodes of one cluster: without a bus of the operator's, each gets one on loopback.
  const cluster = clusterSettingsFrom(workers > 1 && c.clusterListen === undefined ? { ...c, clusterListen: WORKERS_LOOPBACK_BUS } : c)
  const problems = workerListenerProblems(workers, {
    listen,
    metricsListen,
    clusterListen: cluster?.listen,
    clusterAdvertise: cluster?.advertise,
    advertiseUrl: c.advertiseUrl ?? c.publicUrl,
    clusterNodeId: c.clusterNodeId,
  })
  if (problems.length > 0) throw new TunnelError('TUN_ERR_CONFIG_INVALID', `invalid server configuration: ${problems.join('; ')}`)
  return Object.freeze({
    ...c,
    dataDir,
    workers,
    listen,
    ingressListen: parseListenAddress(c.ingressListen, 'ingressListen'),
    metricsListen,
    database: c.database ?? join(dataDir, 'apptunnel.db'),
    cluster,
  })
}

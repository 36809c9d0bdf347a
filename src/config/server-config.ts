import { join, resolve } from 'node:path'
import { z } from 'zod'
import { durationMs, listenAddressString, validateConfig, withCrossFieldChecks } from './config-validation.ts'
import { parseListenAddress, type ListenAddress } from './listen-address.ts'
import { clusterConfigShape, clusterSettingsFrom, type ClusterSettings } from './cluster-config.ts'

const duration = (def: number) => durationMs(z, def)

/** Every option of `apptunnel server`, with defaults and units in the names. */
export const serverConfigSchema = withCrossFieldChecks(
  z
    .object({
      dataDir: z.string().min(1).default('.apptunnel'),
      /** HTTPS listener for the admin API and the agent endpoint */
      listen: listenAddressString(z).default('127.0.0.1:8443'),
      /** plain HTTP ingress of application link URLs; private by default */
      ingressListen: listenAddressString(z).default('127.0.0.1:8080'),
      /** SQLite file path or postgres:// URL; default: apptunnel.db in the data directory */
      database: z.string().min(1).optional(),
      /** the agent endpoint as agents reach it; keys carry it, and agents only dial https */
      publicUrl: z.string().url().refine((u) => u.startsWith('https://'), 'must be an https:// URL: agents only dial the server over TLS').optional(),
      /** a replica: the https URL agents dial to reach this replica directly; default publicUrl (docs/scaling.md) */
      advertiseUrl: z
        .string()
        .url()
        .max(300)
        .refine((u) => u.startsWith('https://'), 'must be an https:// URL: agents only dial the server over TLS')
        .optional(),
      /** tunnels answer at <tunnel-id>.<ingressDomain> */
      ingressDomain: z.string().regex(/^[a-z0-9.-]+$/i, 'a DNS name').default('localhost'),
      /** application link URL base when the ingress sits behind a proxy, e.g. https://{id}.tunnels.example.com/ */
      ingressPublicUrl: z.string().includes('{id}').optional(),
      tlsCertFile: z.string().optional(),
      tlsKeyFile: z.string().optional(),
      orgName: z.string().min(1).max(100).default('default'),
      maxTunnelsPerOrg: z.number().int().min(1).max(100_000).default(100),
      pingIntervalMs: duration(5_000),
      pingTimeoutMs: duration(5_000),
      /** how often linked products are re-read from the database (changes through other replicas) */
      accessRefreshMs: duration(5_000),
      drainTimeoutMs: duration(10_000),
      headTimeoutMs: duration(20_000),
      idleTimeoutMs: duration(120_000),
      /** ingress: an upgraded connection (WebSocket and other 101s) with no traffic either way is closed after this */
      upgradedIdleTimeoutMs: duration(10 * 60_000),
      upstreamResponseTimeoutMs: duration(60_000),
      /** a request body must bring bodyMinBytesPerSecond × this window in every window of this length */
      bodyTimeoutMs: duration(20_000),
      bodyMinBytesPerSecond: z.number().int().min(1).max(1024 * 1024 * 1024).default(500),
      /** HTTPS listener (admin API, agent endpoint): a TLS handshake must finish within this time */
      tlsHandshakeTimeoutMs: duration(10_000),
      /** HTTPS listener: a request head must arrive within this time of the connection or the last request */
      apiHeadTimeoutMs: duration(20_000),
      /** HTTPS listener: a whole request, body included, must arrive within this time */
      apiRequestTimeoutMs: duration(60_000),
      /** a console session unused this long ends (30 min) */
      consoleSessionIdleMs: duration(30 * 60_000),
      /** a console session ends this long after sign-in, used or not (12 h) */
      consoleSessionMaxMs: duration(12 * 3600_000),
      maxStreamsPerSession: z.number().int().min(1).max(100_000).default(1_000),
      /** ingress: concurrent caller connections one source address (IPv6: one /64) may hold per tunnel; 0: no cap (docs/decisions.md, entry 36) */
      /** a replica's /readyz waits this long from start for agents to dial it before a path to a peer replica counts (decision 37) */
      replicaReadyGraceMs: duration(30_000),
      maxConnectionsPerSource: z.number().int().min(0).max(1_000_000).default(250),
      /** agent sessions one tunnel may hold open at once, over all its nodes (each node keeps --sessions) */
      maxSessionsPerTunnel: z.number().int().min(1).max(10_000).default(64),
      maxHeadBytes: z.number().int().min(1024).max(1024 * 1024).default(16 * 1024),
      maxHeaderCount: z.number().int().min(8).max(1000).default(100),
      logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      /** one JSON line per ingress request appended to this file, or `-` for standard output; off when absent */
      accessLog: z.string().min(1).max(4096).optional(),
      /** plain HTTP listener for /metrics, /healthz and /readyz, HOST:PORT; off when absent */
      metricsListen: listenAddressString(z).optional(),
      /** metrics listener: a request head must arrive within this time of the connection or the last request */
      metricsHeadTimeoutMs: duration(10_000),
      /** metrics listener: a whole request, body included, must arrive within this time */
      metricsRequestTimeoutMs: duration(15_000),
      // --- cluster bus (replicas sharing one database; src/cluster/) ---
      ...clusterConfigShape,
      /** this replica's cluster node id; default: kept in the data directory */
      clusterNodeId: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, '1-64 characters of A-Z a-z 0-9 . _ -').optional(),
    })
    .strict(),
  (c) => ((c['tlsCertFile'] === undefined) === (c['tlsKeyFile'] === undefined) ? [] : [{ field: 'tlsCertFile', message: 'tlsCertFile and tlsKeyFile must be given together' }]),
)

export type ServerConfigInput = z.input<typeof serverConfigSchema>

export interface ServerConfig extends Omit<z.output<typeof serverConfigSchema>, 'listen' | 'ingressListen' | 'database' | 'metricsListen'> {
  listen: ListenAddress
  ingressListen: ListenAddress
  /** the metrics and health listener, or undefined when metricsListen is not set */
  metricsListen: ListenAddress | undefined
  database: string
  /** the cluster bus settings, or undefined when clusterListen is not set */
  cluster: ClusterSettings | undefined
}

/** Validates once at the edge; every problem is reported with the field that has it. */
export function loadServerConfig(input: ServerConfigInput): Readonly<ServerConfig> {
  const c = validateConfig(serverConfigSchema, input, 'server')
  const dataDir = resolve(c.dataDir)
  return Object.freeze({
    ...c,
    dataDir,
    listen: parseListenAddress(c.listen, 'listen'),
    ingressListen: parseListenAddress(c.ingressListen, 'ingressListen'),
    metricsListen: c.metricsListen === undefined ? undefined : parseListenAddress(c.metricsListen, 'metricsListen'),
    database: c.database ?? join(dataDir, 'apptunnel.db'),
    cluster: clusterSettingsFrom(c),
  })
}

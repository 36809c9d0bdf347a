import { startClusterNode, type ClusterNode } from '../cluster/index.ts'
import { resolveNodeId } from '../config/node-identity.ts'
import type { ServerConfig } from '../config/server-config.ts'
import { urlHost } from '../config/listen-address.ts'
import { silentLogger, type Logger, type ProgressOutput } from '../observability/index.ts'
import { AuditRepository, TunnelPresenceRepository, TunnelRepository } from '../store/index.ts'
import { SessionRegistry } from './agent-gateway/session-registry.ts'
import { startClusterSync } from './cluster-sync.ts'
import { gatewayFromConfig } from './gateway-from-config.ts'
import { httpsFrontFromConfig } from './https-front-from-config.ts'
import { AccessLog } from './ingress/access-log.ts'
import { HostRouter } from './ingress/host-router.ts'
import { SourceLimits } from './ingress/source-limits.ts'
import { ingressFromConfig } from './ingress-from-config.ts'
import { serverMetricsIfListening, startMetricsEndpoint } from './metrics-endpoint.ts'
import { runCleanups, serverClose, type Cleanup } from './server-drain.ts'
import { serverEntry, writeServerInfo, type ServerEntry } from './server-info-file.ts'
import { openServerStore } from './server-store.ts'
import { startTunnelAccess } from './tunnel-access.ts'
import { TunnelPresence } from './tunnel-presence.ts'
import type { LinkedProductService } from './tunnels/linked-product-service.ts'
import { TunnelActivity } from './tunnels/tunnel-activity.ts'
import { TunnelService } from './tunnels/tunnel-service.ts'

export interface TunnelServer {
  /** the HTTPS endpoint of the admin API and of agents, as agents reach it */
  readonly publicUrl: string
  readonly apiAddress: { host: string; port: number }
  readonly ingressAddress: { host: string; port: number }
  readonly certificatePem: string
  readonly certificatePin: string | undefined
  readonly orgId: string
  readonly registry: SessionRegistry
  readonly tunnels: TunnelService
  /** linked products: who may call each tunnel */
  readonly products: LinkedProductService
  /** ingress caller connections counted per (tunnel, source address) */
  readonly sourceLimits: SourceLimits
  /** this replica's cluster node, when started with clusterListen */
  readonly cluster: ClusterNode | undefined
  /** the plain-HTTP /metrics, /healthz and /readyz listener, when started with metricsListen */
  readonly metricsAddress: { host: string; port: number } | undefined
  /**
   * Where a person starts: the cloud console's URL, and the files holding the first credentials
   * (undefined when the file is not in this data directory: changed and deleted, or written by the
   * replica that started first).
   */
  readonly entry: ServerEntry
  applicationLinkUrl(tunnelId: string): string
  /** Starts a fresh access log file at the same path (SIGHUP, after logrotate moved the old one); a no-op without one. */
  reopenLogs(): void
  /** Drains (ingress first, then agent sessions, each up to drainTimeoutMs) and closes everything; idempotent. */
  close(): Promise<void>
}

export interface ServerDeps {
  log?: Logger
  /** where migrations and the drain show their progress (the CLI passes stderr); only a TTY shows it */
  terminal?: ProgressOutput | undefined
  /** the clock of the credential caches and failed-authentication limits (tests pass their own) */
  now?: () => number
}

/**
 * Composition root of `apptunnel server`: store, certificate, session registry, agent gateway,
 * admin API and ingress. Shuts down callers first, then what they depend on: ingress, sessions, store.
 */
export async function startServer(config: Readonly<ServerConfig>, deps: ServerDeps = {}): Promise<TunnelServer> {
  const startedAtMs = performance.now()
  const log = deps.log ?? silentLogger()
  const { database, org, cert, certificatePin } = await openServerStore(config, { log, terminal: deps.terminal })
  const cleanups: Cleanup[] = [() => database.close()]
  try {
    const tunnelRepo = new TunnelRepository(database)
    const audit = new AuditRepository(database)
    const registry = new SessionRegistry()
    // Set below when clusterListen is given: tunnel changes then go to the other replicas.
    let cluster: ClusterNode | undefined
    // With replicas, each records which tunnels it holds sessions of (docs/scaling.md).
    const presence = new TunnelPresenceRepository(database)
    const tunnelPresence = new TunnelPresence({ registry, tunnels: tunnelRepo, presence, nodeId: () => cluster?.nodeId, log })
    // A replica is live for as long as the membership says so: three missed heartbeats.
    const otherReplicas = (tunnelIds?: readonly string[]) =>
      presence.liveReplicas({ ...(tunnelIds === undefined ? {} : { tunnelIds }), exceptNodeId: cluster?.nodeId ?? '', liveSinceIso: new Date(Date.now() - 3 * config.cluster!.heartbeatIntervalMs).toISOString() })

    const router = new HostRouter(config.ingressDomain)
    let publicUrl = config.publicUrl ?? ''
    let ingressPort = config.ingressListen.port
    const applicationLinkUrl = (id: string): string =>
      config.ingressPublicUrl?.replace('{id}', id) ?? router.urlFor(id, { scheme: 'http', port: ingressPort, domain: config.ingressDomain })
    const tunnels = new TunnelService(
      { tunnels: tunnelRepo, audit, registry },
      {
        maxTunnelsPerOrg: config.maxTunnelsPerOrg,
        keyServer: () => ({ serverUrl: publicUrl, certificatePin }),
        applicationLinkUrl,
        onTunnelChanged: (tunnelId, change) => {
          gateway.tunnelChanged(tunnelId, change)
          if (change === 'deleted') activity.forget(tunnelId)
          cluster?.publish('tunnel.changed', { tunnelId, change })
        },
        ...(config.cluster === undefined ? {} : { otherReplicas }),
      },
    )
    // Opened before the ingress exists and closed after it: every request it serves gets its line.
    const accessLog = config.accessLog === undefined ? undefined : await AccessLog.open(config.accessLog, { log: log.child({ component: 'ingress' }) })
    if (accessLog !== undefined) cleanups.push(() => accessLog.close())
    const metrics = await serverMetricsIfListening(
      config,
      { sessions: () => registry.all(), tunnelStatuses: () => tunnels.viewsOf(org.orgId), ingressConnections: () => ingress.connectionCount, clusterMetrics: () => cluster?.renderMetrics() ?? '', accessLog: () => accessLog },
      log,
    )
    // Per-tunnel activity for the console: counted from the same calls the metrics get.
    const activity = new TunnelActivity({ exists: (id) => gateway.knows(id) }).watch(registry)
    const counted = activity.sinks(metrics)
    const gateway = await gatewayFromConfig(config, { registry, tunnels: tunnelRepo, org, applicationLinkUrl, cluster: () => cluster, metrics: counted, log, now: deps.now })
    const { access, products } = await startTunnelAccess(config, { database, audit, cluster: () => cluster, log })
    cleanups.push(() => access.close())
    const { https, apiTokens } = await httpsFrontFromConfig(config, { database, audit, org, cert, tunnels, products, activity, gateway, cluster: () => cluster, log, now: deps.now })
    const sourceLimits = new SourceLimits(config.maxConnectionsPerSource)
    const ingress = ingressFromConfig(config, { registry, router, tunnels, access, sourceLimits, accessLog, metrics: counted, cluster: () => cluster, log })

    // Cluster bus: what other replicas change reaches this one (src/server/cluster-sync.ts).
    // Started before any listener, so a failure here (say, a node id in use) leaves nothing open.
    if (config.cluster !== undefined) {
      const nodeId = await resolveNodeId({ nodeId: config.clusterNodeId, dataDir: config.dataDir })
      const node = await startClusterNode({ ...config.cluster, nodeId, kind: 'server' }, { database, log })
      cluster = node
      cleanups.push(() => node.close())
      const sync = await startClusterSync({ node, registry, gateway, apiTokens, access, ingress, presence, log, forwardHeadTimeoutMs: config.headTimeoutMs })
      cleanups.push(() => sync.close())
    }
    const metricsListener = await startMetricsEndpoint(config, { metrics, database, https, ingress, registry, cluster, heldByPeers: () => otherReplicas(), startedAtMs, log })
    if (metricsListener !== undefined) cleanups.push(() => metricsListener.close())

    const apiAddress = await https.listen(config.listen.host, config.listen.port)
    cleanups.push(() => https.close())
    const ingressAddress = await ingress.listen(config.ingressListen.host, config.ingressListen.port)
    ingressPort = ingressAddress.port
    if (publicUrl === '') publicUrl = `https://${urlHost(config.listen.host)}:${apiAddress.port}`
    if (cluster !== undefined) {
      // Known only now that the listener has its port; agents learn it from the replica list.
      cluster.setAgentEndpoint({ url: new URL(config.advertiseUrl ?? publicUrl).origin, ...(certificatePin === undefined ? {} : { pin: certificatePin }) })
      await cluster.refreshMembership()
    }
    // Looked up before server.json is written, so that the line below follows that file at once:
    // a script that waits for the file finds the line right behind it.
    const entry = await serverEntry(config.dataDir, publicUrl)
    const ingressHostPort = `${ingressAddress.host}:${ingressAddress.port}`
    await writeServerInfo(config.dataDir, { url: `https://${urlHost(apiAddress.host)}:${apiAddress.port}`, publicUrl, certificateFile: cert.certPath, ingress: ingressHostPort })
    // Paths only: the files' contents never reach a log.
    log.info({ url: publicUrl, ingress: ingressHostPort, database: database.dialect, ...entry }, 'tunnel server listening')

    return {
      publicUrl, apiAddress, ingressAddress, certificatePem: cert.cert, certificatePin, orgId: org.orgId, entry, applicationLinkUrl,
      registry, tunnels, products, sourceLimits, cluster, metricsAddress: metricsListener?.address,
      reopenLogs: () => accessLog?.reopen(),
      close: serverClose({ ingress, gateway, registry, presence: tunnelPresence, cleanups }, { drainTimeoutMs: config.drainTimeoutMs, log, terminal: deps.terminal }),
    }
  } catch (err) {
    await runCleanups(cleanups)
    throw err
  }
}

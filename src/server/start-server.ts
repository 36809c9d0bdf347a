import { access as fileAccess, mkdir, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startClusterNode, type ClusterNode } from '../cluster/index.ts'
import { resolveNodeId } from '../config/node-identity.ts'
import type { ServerConfig } from '../config/server-config.ts'
import { TunnelError } from '../errors/index.ts'
import { TerminalProgress, describeDrain, describeMigration, silentLogger, type Logger, type ProgressOutput } from '../observability/index.ts'
import { MetricsListener, createServerMetrics, type ServerMetrics } from '../observability/metrics/index.ts'
import { ApiTokenRepository, AuditRepository, LinkedProductRepository, OrgRepository, TunnelPresenceRepository, TunnelRepository, openDatabase, type Database } from '../store/index.ts'
import { spkiPin } from '../transport/certificate-pin.ts'
import { loadOrCreateCertificate } from '../transport/self-signed-certificate.ts'
import { AccessLog } from './ingress/access-log.ts'
import { AccessPolicies } from './ingress/access-policies.ts'
import { LinkedProductService } from './tunnels/linked-product-service.ts'
import { AdminApi } from './admin-api/admin-api.ts'
import { CLOUD_CONSOLE_PATH, CloudConsole } from './console/cloud-console.ts'
import { ApiTokenService } from './admin-api/api-token-service.ts'
import { BOOTSTRAP_USERNAME, CONSOLE_PASSWORD_FILE } from '../web/bootstrap-admin.ts'
import { AgentGateway } from './agent-gateway/agent-gateway.ts'
import { SessionRegistry } from './agent-gateway/session-registry.ts'
import { TunnelActivity } from './tunnels/tunnel-activity.ts'
import { ADMIN_TOKEN_FILE, SERVER_INFO_FILE, bootstrapOrg } from './bootstrap.ts'
import { HostRouter } from './ingress/host-router.ts'
import { OncePerInterval } from './ingress/once-per-interval.ts'
import { IngressServer } from './ingress/ingress-server.ts'
import { ReplicaForwarder } from './replica-forward/replica-forwarder.ts'
import { SourceLimits } from './ingress/source-limits.ts'
import { TunnelService } from './tunnels/tunnel-service.ts'
import { TunnelPresence } from './tunnel-presence.ts'
import { HttpsFront } from './https-front.ts'
import { startClusterSync } from './cluster-sync.ts'
import { serverReadinessChecks } from './server-readiness.ts'

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
  readonly entry: { consoleUrl: string; consoleUser: string; consolePasswordFile: string | undefined; adminTokenFile: string | undefined }
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

function displayHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return 'localhost'
  return host.includes(':') ? `[${host}]` : host
}

/**
 * Composition root of `apptunnel server`: store, certificate, session registry, agent gateway,
 * admin API and ingress. Shuts down callers first, then what they depend on: ingress, sessions, store.
 */
export async function startServer(config: Readonly<ServerConfig>, deps: ServerDeps = {}): Promise<TunnelServer> {
  const startedAtMs = performance.now()
  const log = deps.log ?? silentLogger()
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 })
  const migrating = new TerminalProgress({ out: deps.terminal })
  const database: Database = await openDatabase(config.database, { onMigration: (step) => migrating.update(describeMigration(step)) }).finally(() => migrating.done())
  if (database.migrated.length > 0) log.info({ migrations: database.migrated, database: database.dialect }, 'database migrated')
  const cleanups: Array<() => Promise<void> | void> = [() => database.close()]
  try {
    const orgs = new OrgRepository(database)
    const tokens = new ApiTokenRepository(database)
    const tunnelRepo = new TunnelRepository(database)
    const audit = new AuditRepository(database)
    const org = await bootstrapOrg({ orgs, tokens }, { dataDir: config.dataDir, orgName: config.orgName })
    if (org.createdToken) log.info({ file: join(config.dataDir, 'admin-token') }, 'created the bootstrap admin token')

    const publicHint = config.publicUrl === undefined ? [] : [new URL(config.publicUrl).hostname]
    const cert = await loadOrCreateCertificate(
      config.dataDir,
      { certPath: config.tlsCertFile, keyPath: config.tlsKeyFile },
      [config.listen.host, ...publicHint].filter((h) => h !== '0.0.0.0' && h !== '::'),
    )
    const certificatePin = cert.selfSigned ? spkiPin(cert.cert) : undefined

    const registry = new SessionRegistry()
    // With replicas, each records which tunnels it holds sessions of (docs/scaling.md).
    const presence = new TunnelPresenceRepository(database)
    const tunnelPresence = new TunnelPresence({ registry, tunnels: tunnelRepo, presence, nodeId: () => cluster?.nodeId, log })

    const router = new HostRouter(config.ingressDomain)
    let publicUrl = config.publicUrl ?? ''
    let ingressPort = config.ingressListen.port
    const applicationLinkUrl = (id: string): string =>
      config.ingressPublicUrl !== undefined
        ? config.ingressPublicUrl.replace('{id}', id)
        : router.urlFor(id, { scheme: 'http', port: ingressPort, domain: config.ingressDomain })
    // Set below when clusterListen is given: tunnel changes then go to the other replicas.
    let cluster: ClusterNode | undefined
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
        ...(config.cluster === undefined
          ? {}
          : {
              otherReplicas: (tunnelIds?: readonly string[]) =>
                presence.liveReplicas({
                  ...(tunnelIds === undefined ? {} : { tunnelIds }),
                  exceptNodeId: cluster?.nodeId ?? '',
                  // A replica is live for as long as the membership says so: three missed heartbeats.
                  liveSinceIso: new Date(Date.now() - 3 * config.cluster!.heartbeatIntervalMs).toISOString(),
                }),
            }),
      },
    )
    // Opened before the ingress exists and closed after it: every request it serves gets its line.
    const accessLog = config.accessLog === undefined ? undefined : await AccessLog.open(config.accessLog, { log: log.child({ component: 'ingress' }) })
    if (accessLog !== undefined) cleanups.push(() => accessLog.close())
    // Only with metricsListen: otherwise the data path counts into no-op sinks and prom-client stays unloaded.
    const metrics: ServerMetrics | undefined =
      config.metricsListen === undefined
        ? undefined
        : await createServerMetrics(
            {
              sessions: () => registry.all(),
              tunnelStatuses: () => tunnels.viewsOf(org.orgId),
              ingressConnections: () => ingress.connectionCount,
              clusterMetrics: () => cluster?.renderMetrics() ?? '',
              accessLog: () => accessLog,
            },
            { log },
          )
    // Per-tunnel activity for the console: counted from the same calls the metrics get.
    const activity = new TunnelActivity({ exists: (id) => gateway.knows(id) }).watch(registry)
    const counted = activity.sinks(metrics)
    const gateway = new AgentGateway(
      {
        pingIntervalMs: config.pingIntervalMs,
        pingTimeoutMs: config.pingTimeoutMs,
        drainTimeoutMs: config.drainTimeoutMs,
        maxStreamsPerSession: config.maxStreamsPerSession,
        maxSessionsPerTunnel: config.maxSessionsPerTunnel,
        sessionSetupTimeoutMs: 10_000,
        ...(deps.now === undefined ? {} : { now: deps.now }),
      },
      {
        registry,
        log,
        metrics: counted,
        replicas: () => (cluster === undefined ? undefined : { self: cluster.nodeId, replicas: cluster.replicas() }),
        findTunnel: async (id) => {
          const t = await tunnelRepo.findById(id)
          if (t === undefined) return undefined
          return { id: t.id, name: t.name, secretHash: t.secretHash, orgName: t.orgId === org.orgId ? org.orgName : t.orgId, applicationLinkUrl: applicationLinkUrl(t.id) }
        },
      },
    )
    gateway.knowTunnels(await tunnelRepo.listIds())
    // Linked products: loaded once, kept in memory for the ingress, re-read on every change here
    // and every accessRefreshMs for changes made through other replicas.
    const productRepo = new LinkedProductRepository(database)
    const access = new AccessPolicies(productRepo, { refreshMs: config.accessRefreshMs, log })
    await access.start()
    cleanups.push(() => access.close())
    const products = new LinkedProductService({
      tunnels: tunnelRepo,
      products: productRepo,
      audit,
      changed: async (id) => {
        await access.reloadTunnel(id)
        // Other replicas reload this tunnel's policy now rather than at their next full refresh.
        cluster?.publish('products.changed', { tunnelId: id })
      },
    })
    const apiTokens = new ApiTokenService(
      { tokens, audit, log: log.child({ component: 'admin-api' }) },
      { auditOrgId: org.orgId, ...(deps.now === undefined ? {} : { now: deps.now }), onTokenChanged: (tokenId, change) => cluster?.publish('token.changed', { tokenId, change }) },
    )
    await apiTokens.start()
    const cloudConsole = await CloudConsole.start(
      { dataDir: config.dataDir, orgId: org.orgId, orgName: org.orgName, maxTunnelsPerOrg: config.maxTunnelsPerOrg, session: { idleTimeoutMs: config.consoleSessionIdleMs, maxAgeMs: config.consoleSessionMaxMs } },
      { database, log },
    )
    const api = new AdminApi({ tunnels, products, tokens: apiTokens, audit, activity, log, consoleActor: (req) => cloudConsole.actor(req) })

    const https = new HttpsFront(
      {
        cert: cert.cert,
        key: cert.key,
        handshakeTimeoutMs: config.tlsHandshakeTimeoutMs,
        headTimeoutMs: config.apiHeadTimeoutMs,
        requestTimeoutMs: config.apiRequestTimeoutMs,
      },
      {
        routes: [
          { matches: (url) => AdminApi.matches(url), handle: (req, res) => api.handle(req, res) },
          { matches: (url) => CloudConsole.matches(url), handle: (req, res) => cloudConsole.handle(req, res) },
        ],
        upgrade: { matches: (req) => AgentGateway.matches(req), handleUpgrade: (req, socket, head) => gateway.handleUpgrade(req, socket, head) },
        log,
      },
    )

    const sourceLimits = new SourceLimits(config.maxConnectionsPerSource)
    const ingress = new IngressServer({
      registry,
      router,
      describeTunnel: (id) => tunnels.describe(id),
      log: log.child({ component: 'ingress' }),
      limits: { maxHeadBytes: config.maxHeadBytes, maxHeaderCount: config.maxHeaderCount },
      timeouts: {
        headTimeoutMs: config.headTimeoutMs,
        idleTimeoutMs: config.idleTimeoutMs,
        upgradedIdleTimeoutMs: config.upgradedIdleTimeoutMs,
        upstreamResponseTimeoutMs: config.upstreamResponseTimeoutMs,
        bodyTimeoutMs: config.bodyTimeoutMs,
        bodyMinBytesPerSecond: config.bodyMinBytesPerSecond,
      },
      maxStreamsPerSession: config.maxStreamsPerSession,
      proto: 'http',
      access,
      metrics: counted,
      unsolicitedWarnings: new OncePerInterval(60_000),

      // Replicas forward a caller to one that holds the tunnel when they hold none (decision 37).
      forwarder:
        config.cluster === undefined
          ? undefined
          : new ReplicaForwarder({
              registry,
              describeTunnel: (id) => tunnels.describe(id),
              openForward: (peerId) => {
                if (cluster === undefined) return Promise.reject(new TunnelError('TUN_ERR_CLUSTER_CONNECTION_LOST', 'the cluster node is not started'))
                return cluster.openForward(peerId)
              },
              log: log.child({ component: 'replica-forward' }),
            }),
      sourceLimits,
      accessLog,
    })

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

    // Up before the other listeners, so /readyz can say they are not yet listening.
    let metricsListener: MetricsListener | undefined
    if (metrics !== undefined && config.metricsListen !== undefined) {
      const listener = await MetricsListener.start(config.metricsListen, {
        render: () => metrics.render(),
        contentType: metrics.contentType,
        checks: serverReadinessChecks({
          database,
          https,
          ingress,
          replica:
            cluster === undefined
              ? undefined
              : {
                  ownTunnels: () => new Set([...registry.all()].map((s) => s.info.tunnelId)),
                  heldByPeers: () =>
                    presence.liveReplicas({
                      exceptNodeId: cluster!.nodeId,
                      liveSinceIso: new Date(Date.now() - 3 * config.cluster!.heartbeatIntervalMs).toISOString(),
                    }),
                  keyedLinks: () => cluster!.status().links.filter((l) => l.kid !== null).map((l) => l.peerId),
                  uptimeMs: () => performance.now() - startedAtMs,
                  graceMs: config.replicaReadyGraceMs,
                },
        }),
        log: log.child({ component: 'metrics' }),
      }, { headTimeoutMs: config.metricsHeadTimeoutMs, requestTimeoutMs: config.metricsRequestTimeoutMs })
      metricsListener = listener
      cleanups.push(() => listener.close())
    }

    const apiAddress = await https.listen(config.listen.host, config.listen.port)
    cleanups.push(() => https.close())
    const ingressAddress = await ingress.listen(config.ingressListen.host, config.ingressListen.port)
    ingressPort = ingressAddress.port

    if (publicUrl === '') publicUrl = `https://${displayHost(config.listen.host)}:${apiAddress.port}`
    if (cluster !== undefined) {
      // Known only now that the listener has its port; agents learn it from the replica list.
      cluster.setAgentEndpoint({ url: new URL(config.advertiseUrl ?? publicUrl).origin, ...(certificatePin === undefined ? {} : { pin: certificatePin }) })
      await cluster.refreshMembership()
    }

    // Looked up before server.json is written, so that the line below follows that file at once,
    // as it did before: a script that waits for the file finds the line right behind it.
    const existing = (file: string) => fileAccess(file).then(() => file, () => undefined)
    const entry = {
      consoleUrl: new URL(`${CLOUD_CONSOLE_PATH}/`, publicUrl).href,
      consoleUser: BOOTSTRAP_USERNAME,
      consolePasswordFile: await existing(join(config.dataDir, CONSOLE_PASSWORD_FILE)),
      adminTokenFile: await existing(join(config.dataDir, ADMIN_TOKEN_FILE)),
    }
    // Written aside and renamed into place: the CLI and scripts poll for this file, and one read
    // between create and write would find it empty.
    const infoFile = join(config.dataDir, SERVER_INFO_FILE)
    const infoTmp = `${infoFile}.${process.pid}.tmp`
    await writeFile(
      infoTmp,
      JSON.stringify({ url: `https://${displayHost(apiAddress.host)}:${apiAddress.port}`, publicUrl, certificateFile: cert.certPath, ingress: `${ingressAddress.host}:${ingressAddress.port}` }, null, 2) + '\n',
    )
    await rename(infoTmp, infoFile)
    // Paths only: the files' contents never reach a log.
    log.info({ url: publicUrl, ingress: `${ingressAddress.host}:${ingressAddress.port}`, database: database.dialect, ...entry }, 'tunnel server listening')

    let closing: Promise<void> | undefined
    const close = (): Promise<void> =>
      (closing ??= (async () => {
        const left = () => ({ connections: ingress.connectionCount, sessions: registry.size })
        const startedAt = Date.now()
        log.info({ ...left(), drainTimeoutMs: config.drainTimeoutMs }, 'draining')
        const draining = new TerminalProgress({ out: deps.terminal })
        draining.follow((elapsedMs) => describeDrain(left(), elapsedMs))
        try {
          await ingress.close(config.drainTimeoutMs)
          gateway.close()
          await Promise.race([registry.closeAll(), new Promise((r) => setTimeout(r, config.drainTimeoutMs).unref())])
        } finally {
          draining.done()
        }
        log.info({ elapsedMs: Date.now() - startedAt }, 'drained')
        registry.destroyAll()
        await tunnelPresence.settled()
        for (const c of cleanups.reverse()) await c()
      })())

    return {
      publicUrl,
      apiAddress,
      ingressAddress,
      certificatePem: cert.cert,
      certificatePin,
      orgId: org.orgId,
      registry,
      tunnels,
      products,
      sourceLimits,
      cluster,
      metricsAddress: metricsListener?.address,
      entry,
      applicationLinkUrl,
      reopenLogs: () => accessLog?.reopen(),
      close,
    }
  } catch (err) {
    for (const c of cleanups.reverse()) await c()
    throw err
  }
}

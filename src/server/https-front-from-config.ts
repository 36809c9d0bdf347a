import type { ClusterNode } from '../cluster/index.ts'
import type { ServerConfig } from '../config/server-config.ts'
import type { Logger } from '../observability/index.ts'
import { ApiTokenRepository, type AuditRepository, type Database } from '../store/index.ts'
import type { CertificateFiles } from '../transport/self-signed-certificate.ts'
import { AdminApi } from './admin-api/admin-api.ts'
import { ApiTokenService } from './admin-api/api-token-service.ts'
import { AgentGateway } from './agent-gateway/agent-gateway.ts'
import { CloudConsole } from './console/cloud-console.ts'
import { HttpsFront } from './https-front.ts'
import type { LinkedProductService } from './tunnels/linked-product-service.ts'
import type { TunnelActivity } from './tunnels/tunnel-activity.ts'
import type { TunnelService } from './tunnels/tunnel-service.ts'

export interface HttpsFrontWiring {
  database: Database
  audit: AuditRepository
  org: { orgId: string; orgName: string }
  cert: Pick<CertificateFiles, 'cert' | 'key'>
  tunnels: TunnelService
  products: LinkedProductService
  activity: TunnelActivity
  gateway: AgentGateway
  /** this replica's cluster node once it has started; undefined on a lone server */
  cluster(): ClusterNode | undefined
  log: Logger
  now?: (() => number) | undefined
}

/**
 * The HTTPS listener (not yet listening) with what it routes to: the admin API over its API
 * tokens, the cloud console, and the agents' upgrades to the gateway. Returns the token service
 * too: token changes made on other replicas reach it through the cluster.
 */
export async function httpsFrontFromConfig(config: Readonly<ServerConfig>, wiring: HttpsFrontWiring): Promise<{ https: HttpsFront; apiTokens: ApiTokenService }> {
  const { database, audit, org, gateway, log } = wiring
  const apiTokens = new ApiTokenService(
    { tokens: new ApiTokenRepository(database), audit, log: log.child({ component: 'admin-api' }) },
    { auditOrgId: org.orgId, ...(wiring.now === undefined ? {} : { now: wiring.now }), onTokenChanged: (tokenId, change) => wiring.cluster()?.publish('token.changed', { tokenId, change }) },
  )
  await apiTokens.start()
  const cloudConsole = await CloudConsole.start(
    { dataDir: config.dataDir, orgId: org.orgId, orgName: org.orgName, maxTunnelsPerOrg: config.maxTunnelsPerOrg, session: { idleTimeoutMs: config.consoleSessionIdleMs, maxAgeMs: config.consoleSessionMaxMs } },
    { database, log },
  )
  const api = new AdminApi({ tunnels: wiring.tunnels, products: wiring.products, tokens: apiTokens, audit, activity: wiring.activity, log, consoleActor: (req) => cloudConsole.actor(req) })
  const https = new HttpsFront(
    { cert: wiring.cert.cert, key: wiring.cert.key, handshakeTimeoutMs: config.tlsHandshakeTimeoutMs, headTimeoutMs: config.apiHeadTimeoutMs, requestTimeoutMs: config.apiRequestTimeoutMs },
    {
      routes: [
        { matches: (url) => AdminApi.matches(url), handle: (req, res) => api.handle(req, res) },
        { matches: (url) => CloudConsole.matches(url), handle: (req, res) => cloudConsole.handle(req, res) },
      ],
      upgrade: { matches: (req) => AgentGateway.matches(req), handleUpgrade: (req, socket, head) => gateway.handleUpgrade(req, socket, head) },
      log,
    },
  )
  return { https, apiTokens }
}

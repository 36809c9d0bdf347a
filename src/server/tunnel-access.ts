import type { ClusterNode } from '../cluster/index.ts'
import type { ServerConfig } from '../config/server-config.ts'
import type { Logger } from '../observability/index.ts'
import { LinkedProductRepository, TunnelRepository, type AuditRepository, type Database } from '../store/index.ts'
import { AccessPolicies } from './ingress/access-policies.ts'
import { LinkedProductService } from './tunnels/linked-product-service.ts'

/**
 * Who may call each tunnel: the linked products, loaded once and kept in memory for the ingress
 * (`access`, which the caller closes), re-read on every change made here (`products`) and every
 * accessRefreshMs for changes made through other replicas.
 */
export async function startTunnelAccess(
  config: Pick<Readonly<ServerConfig>, 'accessRefreshMs'>,
  wiring: { database: Database; audit: AuditRepository; cluster(): ClusterNode | undefined; log: Logger },
): Promise<{ access: AccessPolicies; products: LinkedProductService }> {
  const productRepo = new LinkedProductRepository(wiring.database)
  const access = new AccessPolicies(productRepo, { refreshMs: config.accessRefreshMs, log: wiring.log })
  await access.start()
  const products = new LinkedProductService({
    tunnels: new TunnelRepository(wiring.database),
    products: productRepo,
    audit: wiring.audit,
    changed: async (id) => {
      await access.reloadTunnel(id)
      // Other replicas reload this tunnel's policy now rather than at their next full refresh.
      wiring.cluster()?.publish('products.changed', { tunnelId: id })
    },
  })
  return { access, products }
}

import type { IncomingMessage, ServerResponse } from 'node:http'
import { TunnelError } from '../../errors/index.ts'
import type { Logger } from '../../observability/index.ts'
import { decodeSecurityKey } from '../../protocol/index.ts'
import type { AuditRepository, ClusterNodeRepository } from '../../store/index.ts'
import type { ConsoleIdentity } from '../../web/console-auth.ts'
import { readJsonObject, sendJson } from '../../web/json-http.ts'
import type { InstanceAdmin } from '../instance/instance-admin.ts'

/** Audit events of an instance are filed under this organization name (an instance has none). */
export const INSTANCE_AUDIT_ORG = 'instance'

const NODE_PATH = /^\/api\/v1\/instance\/nodes\/([A-Za-z0-9._-]{1,64})$/

/**
 * The on-prem console's JSON API over InstanceAdmin, the service `apptunnel key …` and
 * `cluster node …` use:
 *
 *   GET    /api/v1/instance/status      {status, reason, hint, tunnel, nodes} (each node with its busAddress)
 *   POST   /api/v1/instance/key/check   {key} → what the key names (nothing is stored)
 *   PUT    /api/v1/instance/key         {key} → stores it for every node
 *   DELETE /api/v1/instance/key         removes it; every node disconnects
 *   DELETE /api/v1/instance/nodes/:id   retires a node that is down
 *   GET    /api/v1/instance/audit?limit=N  the instance's audit events, newest first (default 100, at most 1000)
 */
export class InstanceApi {
  readonly #admin: InstanceAdmin
  readonly #audit: AuditRepository
  readonly #busNodes: ClusterNodeRepository
  readonly #log: Logger

  constructor(deps: { admin: InstanceAdmin; audit: AuditRepository; busNodes: ClusterNodeRepository; log: Logger }) {
    this.#admin = deps.admin
    this.#audit = deps.audit
    this.#busNodes = deps.busNodes
    this.#log = deps.log
  }

  static matches(path: string): boolean {
    return path.startsWith('/api/v1/instance/')
  }

  async handle(req: IncomingMessage, res: ServerResponse, path: string, who: ConsoleIdentity): Promise<void> {
    const method = req.method ?? 'GET'
    if (path === '/api/v1/instance/status' && method === 'GET') {
      // The console also shows where each node's cluster bus listens (key status --json keeps its shape).
      const [view, bus] = await Promise.all([this.#admin.status(), this.#busNodes.list('agent')])
      const busAddress = new Map(bus.map((n) => [n.id, n.address]))
      sendJson(res, 200, { ...view, nodes: view.nodes.map((n) => ({ ...n, busAddress: busAddress.get(n.id) ?? null })) })
      return
    }
    if (path === '/api/v1/instance/key/check' && method === 'POST') {
      const key = decodeSecurityKey(keyOf(await readJsonObject(req)))
      sendJson(res, 200, { tunnelId: key.tunnelId, serverUrl: key.serverUrl, certificatePinned: key.certificatePin !== undefined })
      return
    }
    if (path === '/api/v1/instance/key' && method === 'PUT') {
      const text = keyOf(await readJsonObject(req))
      const { key, added } = await this.#admin.addKey(text, `console user ${who.username} from ${who.sourceAddress}`)
      await this.#record(who, 'instance.key.add', key.tunnelId, { added })
      this.#log.info({ tunnelId: key.tunnelId, user: who.username, added }, 'security key added through the console')
      sendJson(res, added ? 201 : 200, { added, tunnel: { id: key.tunnelId, serverUrl: key.serverUrl, addedAt: key.addedAt } })
      return
    }
    if (path === '/api/v1/instance/key' && method === 'DELETE') {
      const removed = await this.#admin.removeKey()
      await this.#record(who, 'instance.key.remove', removed.tunnelId, {})
      this.#log.info({ tunnelId: removed.tunnelId, user: who.username }, 'security key removed through the console')
      sendJson(res, 200, { removed: { tunnelId: removed.tunnelId, name: removed.tunnelName } })
      return
    }
    if (path === '/api/v1/instance/audit' && method === 'GET') {
      sendJson(res, 200, { events: await this.#audit.list(INSTANCE_AUDIT_ORG, { limit: auditLimit(req.url ?? '') }) })
      return
    }
    const node = NODE_PATH.exec(path)
    if (node !== null && method === 'DELETE') {
      await this.#admin.removeNode(node[1]!)
      await this.#record(who, 'instance.node.remove', node[1]!, {})
      sendJson(res, 200, { removed: { nodeId: node[1] } })
      return
    }
    throw new TunnelError('TUN_ERR_API_ROUTE_NOT_FOUND', `no API route ${method} ${path}`)
  }

  async #record(who: ConsoleIdentity, action: string, target: string, details: Record<string, unknown>): Promise<void> {
    await this.#audit.record({ orgId: INSTANCE_AUDIT_ORG, actor: `console:${who.username}`, action, target, sourceAddress: who.sourceAddress, details })
  }
}

const AUDIT_LIMIT_MAX = 1000

function auditLimit(url: string): number {
  const raw = new URLSearchParams(url.split('?')[1] ?? '').get('limit')
  if (raw === null) return 100
  const n = Number(raw)
  if (!/^\d{1,7}$/.test(raw) || n < 1 || n > AUDIT_LIMIT_MAX) throw new TunnelError('TUN_ERR_API_BAD_REQUEST', `limit must be a whole number from 1 to ${AUDIT_LIMIT_MAX} (got "${raw}")`)
  return n
}

function keyOf(body: Record<string, unknown>): string {
  if (typeof body.key !== 'string' || body.key.trim() === '') throw new TunnelError('TUN_ERR_KEY_MALFORMED', 'security key is malformed: it is empty (paste the whole key shown when the tunnel was created)')
  return body.key
}

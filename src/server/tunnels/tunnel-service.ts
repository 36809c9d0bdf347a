import { randomBytes } from 'node:crypto'
import { TunnelError } from '../../errors/index.ts'
import { statusHint } from '../../errors/status-hints.ts'
import { displayNameProblem, displayNameRefusal } from '../../security/display-name.ts'
import { SECRET_BYTES, encodeSecurityKey, hashSecret } from '../../protocol/index.ts'
import type { AuditRepository, Tunnel, TunnelRepository } from '../../store/index.ts'
import type { SessionRegistry } from '../agent-gateway/session-registry.ts'

/** Cloud-side statuses of a tunnel (docs/troubleshooting.md), derived, never stored. */
export type CloudTunnelStatus = 'INCOMPLETE' | 'CONNECTED' | 'UNAVAILABLE'

export interface TunnelView {
  id: string
  name: string
  instanceUrl: string | null
  status: CloudTunnelStatus
  statusReason: string
  /** what the admin can do about the status (src/errors/status-hints.ts) */
  statusHint: string
  /** who holds the live sessions: the instance name each agent gave (or its node id), distinct */
  connectedInstances: string[]
  applicationLinkUrl: string
  sessions: number
  nodes: number
  /** other tunnel server replicas that hold a live session of the tunnel (docs/scaling.md) */
  otherReplicas: string[]
  createdAt: string
  firstConnectedAt: string | null
  lastConnectedAt: string | null
  lastDisconnectedAt: string | null
}

export interface Actor {
  orgId: string
  name: string
  sourceAddress: string
  /** the API token the request presented, when it came with one */
  tokenId?: string
}

export interface TunnelServiceOptions {
  maxTunnelsPerOrg: number
  /** what goes into keys: the agent endpoint and, for a self-signed certificate, its pin */
  keyServer(): { serverUrl: string; certificatePin?: string | undefined }
  applicationLinkUrl(tunnelId: string): string
  /** told after a tunnel is created or deleted (the cluster bus tells the other replicas) */
  onTunnelChanged?: (tunnelId: string, change: 'created' | 'deleted') => void
  /**
   * Replicas: for each tunnel (all when no ids are given), the other live replicas that hold a
   * session of it. Absent on a server without replicas.
   */
  otherReplicas?: (tunnelIds?: readonly string[]) => Promise<Map<string, string[]>>
}

const ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789'
const NAME_MAX = 100

/** 16 characters, a letter first: a DNS label that cannot be guessed (≈ 80 bits). */
export function newTunnelId(random: (n: number) => Buffer = randomBytes): string {
  const bytes = random(16)
  let id = ID_ALPHABET[bytes[0]! % 26]!
  for (let i = 1; i < 16; i++) id += ID_ALPHABET[bytes[i]! % 36]!
  return id
}

/** Tunnel administration as the API and the consoles see it. */
export class TunnelService {
  readonly #tunnels: TunnelRepository
  readonly #audit: AuditRepository
  readonly #registry: SessionRegistry
  readonly #options: TunnelServiceOptions

  constructor(deps: { tunnels: TunnelRepository; audit: AuditRepository; registry: SessionRegistry }, options: TunnelServiceOptions) {
    this.#tunnels = deps.tunnels
    this.#audit = deps.audit
    this.#registry = deps.registry
    this.#options = options
  }

  async create(actor: Actor, input: { name: unknown; instanceUrl?: unknown }): Promise<TunnelView & { key: string }> {
    const name = validateName(input.name)
    const instanceUrl = validateInstanceUrl(input.instanceUrl)
    const secret = randomBytes(SECRET_BYTES)
    const tunnel = await this.#tunnels.create({
      id: newTunnelId(),
      orgId: actor.orgId,
      name,
      instanceUrl,
      secretHash: hashSecret(secret),
      maxPerOrg: this.#options.maxTunnelsPerOrg,
    })
    const server = this.#options.keyServer()
    const key = encodeSecurityKey({
      serverUrl: server.serverUrl,
      tunnelId: tunnel.id,
      secret,
      ...(server.certificatePin === undefined ? {} : { certificatePin: server.certificatePin }),
    })
    await this.#record(actor, 'tunnel.create', tunnel.id, { name })
    this.#options.onTunnelChanged?.(tunnel.id, 'created')
    return { ...this.view(tunnel), key }
  }

  async list(actor: Actor): Promise<TunnelView[]> {
    return this.viewsOf(actor.orgId)
  }

  /** Every tunnel of an organization with its status over all replicas (the API's list, metrics). */
  async viewsOf(orgId: string): Promise<TunnelView[]> {
    const tunnels = await this.#tunnels.list(orgId)
    const elsewhere = await this.#elsewhere()
    return tunnels.map((t) => this.view(t, elsewhere.get(t.id)))
  }

  async get(actor: Actor, id: string): Promise<TunnelView> {
    const tunnel = await this.#tunnels.get(actor.orgId, id)
    if (tunnel === undefined) throw new TunnelError('TUN_ERR_TUNNEL_NOT_FOUND', `tunnel "${id}" not found`)
    await this.#record(actor, 'tunnel.view', id)
    return this.view(tunnel, (await this.#elsewhere([id])).get(id))
  }

  /** Refuses a tunnel the actor's organization does not have (404), without auditing a view. */
  async mustOwn(actor: Actor, id: string): Promise<void> {
    if ((await this.#tunnels.get(actor.orgId, id)) === undefined) throw new TunnelError('TUN_ERR_TUNNEL_NOT_FOUND', `tunnel "${id}" not found`)
  }

  /** Which other live replicas hold sessions of these tunnels (none on a server without replicas). */
  async #elsewhere(ids?: readonly string[]): Promise<Map<string, string[]>> {
    if (this.#options.otherReplicas === undefined) return new Map()
    return this.#options.otherReplicas(ids)
  }

  /** Deletes the tunnel and ends its sessions at once: the key is dead from here on. */
  async delete(actor: Actor, id: string): Promise<void> {
    const deleted = await this.#tunnels.delete(actor.orgId, id)
    if (!deleted) throw new TunnelError('TUN_ERR_TUNNEL_NOT_FOUND', `tunnel "${id}" not found`)
    this.#registry.revokeTunnel(id, new TunnelError('TUN_ERR_TUNNEL_NOT_FOUND', 'tunnel deleted'))
    this.#options.onTunnelChanged?.(id, 'deleted')
    await this.#record(actor, 'tunnel.delete', id)
  }

  /** 404 or the status, for the ingress to explain a tunnel without a live session here. */
  async describe(id: string): Promise<{ status: CloudTunnelStatus; otherReplicas: string[] } | undefined> {
    const t = await this.#tunnels.findById(id)
    if (t === undefined) return undefined
    const view = this.view(t, (await this.#elsewhere([id])).get(id))
    return { status: view.status, otherReplicas: view.otherReplicas }
  }

  /** The tunnel as this replica sees it, given the other replicas that hold sessions of it. */
  view(t: Tunnel, otherReplicas: readonly string[] = []): TunnelView {
    // Live, not isOpen: a tunnel whose sessions carry all the relays they may is busy, not down.
    const sessions = this.#registry.sessionsOf(t.id).filter((s) => s.isLive)
    const nodes = new Set(sessions.map((s) => s.info.nodeId)).size
    const others = otherReplicas.length === 0 ? '' : `; also connected through ${otherReplicas.length === 1 ? 'replica' : 'replicas'} ${otherReplicas.join(', ')}`
    let status: CloudTunnelStatus
    let statusReason: string
    if (sessions.length > 0) {
      status = 'CONNECTED'
      statusReason = `${sessions.length} live session${sessions.length === 1 ? '' : 's'} from ${nodes} node${nodes === 1 ? '' : 's'}${others}`
    } else if (otherReplicas.length > 0) {
      // CONNECTED if any replica holds a live session: callers reaching that replica get through.
      status = 'CONNECTED'
      statusReason = `connected through ${otherReplicas.length === 1 ? 'replica' : 'replicas'} ${otherReplicas.join(', ')}, not through this one`
    } else if (t.firstConnectedAt !== null) {
      status = 'UNAVAILABLE'
      statusReason = `no agent connected${t.lastDisconnectedAt === null ? '' : ` since ${t.lastDisconnectedAt}`}`
    } else {
      status = 'INCOMPLETE'
      statusReason = 'the security key has not been added to an on-prem instance yet'
    }
    const cause = status === 'CONNECTED' ? 'cloud-connected' : status === 'UNAVAILABLE' ? 'cloud-no-agent' : 'cloud-no-key-added'
    return {
      id: t.id,
      name: t.name,
      instanceUrl: t.instanceUrl,
      status,
      statusReason,
      statusHint: statusHint({ status, cause, serverUrl: this.#options.keyServer().serverUrl }),
      connectedInstances: [...new Set(sessions.map((s) => (s.info.instance === '' ? `node ${s.info.nodeId}` : s.info.instance)))],
      applicationLinkUrl: this.#options.applicationLinkUrl(t.id),
      sessions: sessions.length,
      nodes,
      otherReplicas: [...otherReplicas],
      createdAt: t.createdAt,
      firstConnectedAt: t.firstConnectedAt,
      lastConnectedAt: t.lastConnectedAt,
      lastDisconnectedAt: t.lastDisconnectedAt,
    }
  }

  async #record(actor: Actor, action: string, target: string, details?: Record<string, unknown>): Promise<void> {
    await this.#audit.record({ orgId: actor.orgId, actor: actor.name, action, target, sourceAddress: actor.sourceAddress, details: details ?? null })
  }
}

function validateName(v: unknown): string {
  if (typeof v !== 'string') throw new TunnelError('TUN_ERR_TUNNEL_NAME_INVALID', 'tunnel name is required')
  // Checked before trimming: a leading U+FEFF would otherwise vanish into the trim unnoticed.
  const problem = displayNameProblem(v)
  if (problem !== undefined) {
    const refusal = displayNameRefusal('tunnel name', problem)
    throw new TunnelError('TUN_ERR_TUNNEL_NAME_INVALID', refusal.message, { details: refusal.details })
  }
  const name = v.trim()
  if (name.length === 0) throw new TunnelError('TUN_ERR_TUNNEL_NAME_INVALID', 'tunnel name must not be empty')
  if (name.length > NAME_MAX) throw new TunnelError('TUN_ERR_TUNNEL_NAME_INVALID', `tunnel name must be at most ${NAME_MAX} characters`)
  return name
}

function validateInstanceUrl(v: unknown): string | null {
  if (v === undefined || v === null || v === '') return null
  if (typeof v !== 'string') throw new TunnelError('TUN_ERR_TUNNEL_URL_INVALID', 'instance URL must be a string')
  let url: URL
  try {
    url = new URL(v)
  } catch {
    throw new TunnelError('TUN_ERR_TUNNEL_URL_INVALID', `instance URL "${v}" is not a URL`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TunnelError('TUN_ERR_TUNNEL_URL_INVALID', `instance URL must be http or https (got "${url.protocol}")`)
  }
  return url.toString()
}

import { TunnelError } from '../../errors/index.ts'
import { decodeSecurityKey } from '../../protocol/index.ts'
import { ClusterNodeRepository, InstanceKeyRepository, InstanceNodeRepository, type Database, type InstanceKeyRecord } from '../../store/index.ts'
import { instanceStatus, type InstanceStatusView } from './instance-status.ts'
import { KeySealer, openStoredKey } from './key-sealer.ts'

/**
 * What an instance admin does to the on-prem instance: add or remove its one security key, look at
 * its status, retire a node. The CLI (`key …`, `cluster node remove`) and the on-prem console call
 * this; the agent nodes notice every change by polling the same database.
 */
export class InstanceAdmin {
  readonly #keys: InstanceKeyRepository
  readonly #nodes: InstanceNodeRepository
  readonly #busNodes: ClusterNodeRepository
  readonly #now: () => number
  readonly #sealer: KeySealer | undefined

  /** With a sealer the key is stored encrypted (`--key-encryption-file`); nodes need the same file. */
  constructor(database: Database, deps: { now?: () => number; sealer?: KeySealer | undefined } = {}) {
    this.#sealer = deps.sealer
    this.#keys = new InstanceKeyRepository(database)
    this.#nodes = new InstanceNodeRepository(database)
    this.#busNodes = new ClusterNodeRepository(database)
    this.#now = deps.now ?? Date.now
  }

  /**
   * Stores the key for the whole instance. The same key again is accepted (nothing changes); a key
   * of another tunnel is refused while one is stored: one tunnel per instance.
   */
  async addKey(text: string, addedBy: string): Promise<{ key: InstanceKeyRecord; added: boolean }> {
    const trimmed = text.trim()
    const key = decodeSecurityKey(trimmed)
    const record = { securityKey: this.#sealer === undefined ? trimmed : this.#sealer.seal(trimmed), tunnelId: key.tunnelId, serverUrl: key.serverUrl, addedAt: new Date(this.#now()).toISOString(), addedBy }
    const result = await this.#keys.add(record)
    if (result.added) return { key: { ...record, tunnelName: null, connectedTo: null, applicationLinkUrl: null }, added: true }
    const existing = result.existing
    let existingPlain: string | undefined
    try {
      existingPlain = openStoredKey(existing.securityKey, this.#sealer)
    } catch {
      existingPlain = undefined // sealed with a file we do not have: it cannot be the same key as far as we can tell
    }
    if (existingPlain === trimmed) return { key: existing, added: false }
    const name = existing.tunnelName === null ? '' : ` "${existing.tunnelName}"`
    throw new TunnelError(
      'TUN_ERR_INSTANCE_HAS_KEY',
      `this instance already has the key of tunnel ${existing.tunnelId}${name} (added ${existing.addedAt}): an instance has one tunnel; run apptunnel key remove first`,
      { details: { tunnelId: existing.tunnelId } },
    )
  }

  /** Removes the key; every node disconnects at its next poll. */
  async removeKey(): Promise<InstanceKeyRecord> {
    const removed = await this.#keys.remove()
    if (removed === undefined) throw new TunnelError('TUN_ERR_INSTANCE_NO_KEY', 'this instance has no security key to remove')
    return removed
  }

  async status(): Promise<InstanceStatusView> {
    const [key, nodes] = await Promise.all([this.#keys.get(), this.#nodes.list()])
    return instanceStatus(key, nodes, this.#now())
  }

  /**
   * Retires a node: it no longer counts towards the instance status. A running node would only
   * register again, so it is refused unless `force` (for a node that is gone but whose last
   * heartbeat is still fresh).
   */
  async removeNode(nodeId: string, options: { force?: boolean } = {}): Promise<void> {
    const view = await this.status()
    const node = view.nodes.find((n) => n.id === nodeId)
    if (node === undefined) {
      const known = view.nodes.map((n) => n.id).join(', ')
      throw new TunnelError('TUN_ERR_INSTANCE_NODE_UNKNOWN', `no node "${nodeId}" is registered in this instance${known === '' ? '' : ` (nodes: ${known})`}`)
    }
    if (node.online && options.force !== true) {
      throw new TunnelError(
        'TUN_ERR_INSTANCE_NODE_ONLINE',
        `node "${nodeId}" is running (heartbeat at ${node.lastHeartbeat}): stop its agent first, or use --force if it is gone`,
      )
    }
    await this.#nodes.remove(nodeId)
    // Its cluster-bus row too, if it had one, so peers stop dialling it.
    await this.#busNodes.remove(nodeId)
  }
}

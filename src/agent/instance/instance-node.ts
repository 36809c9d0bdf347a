import { EventEmitter } from 'node:events'
import { TunnelError, isTunnelError } from '../../errors/index.ts'
import type { Logger } from '../../observability/index.ts'
import { decodeSecurityKey } from '../../protocol/index.ts'
import { InstanceKeyRepository, InstanceNodeRepository, type Database, type InstanceKeyRecord } from '../../store/index.ts'
import type { AgentConnectorOptions } from '../connector/agent-connector.ts'
import { NodeSessions, type NodeStatus } from '../connector/node-sessions.ts'
import { MISSED_HEARTBEATS_DOWN } from './instance-status.ts'
import { openStoredKey, type KeySealer } from './key-sealer.ts'

export interface InstanceNodeOptions {
  nodeId: string
  /** host name or address shown in the cluster nodes view */
  address: string
  version: string
  sessions: number
  /** when the server runs replicas: sessions go to at most this many of them */
  maxReplicas?: number | undefined
  connectGraceMs: number
  /** how often the stored key is re-read, so every node picks up `key add` / `key remove` */
  keyPollMs: number
  heartbeatMs: number
  /** everything a connector needs except the key */
  connector: Omit<AgentConnectorOptions, 'key'>
  /** opens a key stored encrypted (--key-encryption-file) */
  sealer?: KeySealer | undefined
}

/**
 * One agent node of an on-prem instance whose key lives in the instance database.
 *
 *   waiting for a key ──key added──▶ sessions for that key ──key removed / replaced──▶ (drain) ──▶ …
 *
 * Re-reads the key every keyPollMs, reports its status on every change and every heartbeatMs (its
 * row in instance_node is how the other nodes and `key status` see it), and marks itself stopped on
 * close so the instance turns LIMITED at once rather than after the heartbeats run out.
 *
 * Emits 'status' (NodeStatus, or undefined while there is no key).
 */
export class InstanceNode extends EventEmitter {
  readonly #options: InstanceNodeOptions
  readonly #keys: InstanceKeyRepository
  readonly #nodes: InstanceNodeRepository
  readonly #log: Logger
  readonly #startedAt = new Date().toISOString()
  #key: InstanceKeyRecord | undefined
  #sessions: NodeSessions | undefined
  #namesRecorded = false
  /** why the stored key cannot be used on this node (malformed, or sealed without our key file) */
  #keyProblem: TunnelError | undefined
  #pollTimer: NodeJS.Timeout | undefined
  #heartbeatTimer: NodeJS.Timeout | undefined
  #polling: Promise<void> | undefined
  #reporting: Promise<void> | undefined
  #reportAgain = false
  #stopped = false
  #statusSince = new Date().toISOString()
  #lastStatus: string | null = null

  constructor(options: InstanceNodeOptions, deps: { database: Database; log: Logger }) {
    super()
    this.#options = options
    this.#keys = new InstanceKeyRepository(deps.database)
    this.#nodes = new InstanceNodeRepository(deps.database)
    this.#log = deps.log.child({ component: 'instance', nodeId: options.nodeId })
  }

  /** undefined while the instance has no key */
  get status(): NodeStatus | undefined {
    if (this.#sessions !== undefined) return this.#sessions.status
    const problem = this.#keyProblem
    if (this.#key === undefined || problem === undefined) return undefined
    return { status: 'ERROR', reason: problem.message, code: problem.code, since: this.#statusSince, sessions: 0, sessionsWanted: 0 }
  }

  get sessions(): NodeSessions | undefined {
    return this.#sessions
  }

  get tunnelId(): string | undefined {
    return this.#key?.tunnelId
  }

  /** Registers the node (refusing an id another live node holds) and picks up the key, if any. */
  async start(): Promise<void> {
    const existing = await this.#nodes.get(this.#options.nodeId)
    if (existing !== undefined && existing.stoppedAt === null && existing.address !== this.#options.address) {
      const silentMs = Date.now() - Date.parse(existing.heartbeatAt)
      if (silentMs < MISSED_HEARTBEATS_DOWN * existing.heartbeatMs) {
        throw new TunnelError(
          'TUN_ERR_CLUSTER_NODE_ID_TAKEN',
          `node id "${this.#options.nodeId}" is in use by a running node at ${existing.address} (heartbeat ${Math.round(silentMs / 1000)} s ago): give this node its own --data-dir or --node-id`,
        )
      }
    }
    await this.#poll()
    await this.#report()
    this.#schedulePoll()
    this.#heartbeatTimer = setInterval(() => void this.#report(), this.#options.heartbeatMs)
  }

  #schedulePoll(): void {
    if (this.#stopped) return
    this.#pollTimer = setTimeout(() => {
      this.#polling = this.#poll().finally(() => {
        this.#polling = undefined
        this.#schedulePoll()
      })
    }, this.#options.keyPollMs)
  }

  /** Reads the stored key now and follows it (tests, and the console after it stores a key). */
  async #poll(): Promise<void> {
    let stored: InstanceKeyRecord | undefined
    try {
      stored = await this.#keys.get()
    } catch (err) {
      // A database hiccup keeps the current sessions; the next poll tries again.
      this.#log.warn({ err }, 'cannot read the instance key; keeping the current sessions')
      return
    }
    if (this.#stopped) return
    const same = stored?.securityKey === this.#key?.securityKey && stored?.addedAt === this.#key?.addedAt
    if (same) return
    const previous = this.#sessions
    this.#key = stored
    this.#sessions = undefined
    this.#namesRecorded = false
    this.#keyProblem = undefined
    if (previous !== undefined) {
      this.#log.info({ tunnelId: stored?.tunnelId }, stored === undefined ? 'security key removed: disconnecting' : 'security key replaced: reconnecting')
      previous.removeAllListeners('status')
      await previous.close()
    }
    if (stored !== undefined && !this.#stopped) this.#startSessions(stored)
    this.#changed()
  }

  #startSessions(stored: InstanceKeyRecord): void {
    let key
    try {
      key = decodeSecurityKey(openStoredKey(stored.securityKey, this.#options.sealer))
    } catch (err) {
      const e = isTunnelError(err) ? err : new TunnelError('TUN_ERR_KEY_MALFORMED')
      this.#keyProblem = e.code === 'TUN_ERR_KEY_MALFORMED' ? new TunnelError(e.code, `the stored security key is malformed (${e.message}): add it again`) : e
      this.#log.error({ code: e.code, reason: this.#keyProblem.message }, 'cannot use the stored security key')
      return
    }
    this.#log.info({ tunnelId: key.tunnelId }, 'security key picked up: connecting')
    const sessions = new NodeSessions({ ...this.#options.connector, key }, { sessions: this.#options.sessions, connectGraceMs: this.#options.connectGraceMs, maxReplicas: this.#options.maxReplicas })
    this.#sessions = sessions
    sessions.on('status', () => this.#changed())
    sessions.start()
  }

  #changed(): void {
    const st = this.status
    const name = st?.status ?? null
    if (name !== this.#lastStatus) {
      this.#lastStatus = name
      this.#statusSince = new Date().toISOString()
    }
    this.emit('status', st)
    if (st?.status === 'CONNECTED' && !this.#namesRecorded) this.#recordNames()
    void this.#report()
  }

  #recordNames(): void {
    const welcome = this.#sessions?.welcome
    const key = this.#key
    if (welcome === undefined || key === undefined) return
    this.#namesRecorded = true
    this.#keys.recordServerNames(key.tunnelId, { tunnelName: welcome.tunnelName, connectedTo: welcome.orgName, applicationLinkUrl: welcome.applicationLinkUrl }).catch((err: unknown) => {
      this.#namesRecorded = false
      this.#log.warn({ err }, 'cannot record the tunnel name')
    })
  }

  #statusFields(): { tunnelId: string | null; status: string | null; reason: string; code: string | null; sessions: number; sessionsWanted: number } {
    const key = this.#key
    const st = this.#sessions?.status
    if (key === undefined) return { tunnelId: null, status: null, reason: 'waiting for a security key', code: null, sessions: 0, sessionsWanted: 0 }
    if (st === undefined) {
      const problem = this.#keyProblem ?? new TunnelError('TUN_ERR_KEY_MALFORMED', 'the stored security key is malformed: add it again')
      return { tunnelId: key.tunnelId, status: 'ERROR', reason: problem.message, code: problem.code, sessions: 0, sessionsWanted: 0 }
    }
    return { tunnelId: key.tunnelId, status: st.status, reason: st.reason, code: st.code ?? null, sessions: st.sessions, sessionsWanted: st.sessionsWanted }
  }

  /** Writes this node's row; coalesces bursts so at most one write is in flight and one queued. */
  #report(): Promise<void> {
    if (this.#reporting !== undefined) {
      this.#reportAgain = true
      return this.#reporting
    }
    const write = async (): Promise<void> => {
      do {
        this.#reportAgain = false
        if (this.#stopped) return
        try {
          await this.#nodes.report({
            nodeId: this.#options.nodeId,
            address: this.#options.address,
            version: this.#options.version,
            startedAt: this.#startedAt,
            heartbeatAt: new Date().toISOString(),
            heartbeatMs: this.#options.heartbeatMs,
            statusSince: this.#statusSince,
            ...this.#statusFields(),
          })
        } catch (err) {
          this.#log.warn({ err }, 'cannot write this node status to the instance database')
        }
      } while (this.#reportAgain)
    }
    this.#reporting = write().finally(() => {
      this.#reporting = undefined
    })
    return this.#reporting
  }

  /** Reads the key now instead of at the next poll. */
  async refresh(): Promise<void> {
    await (this.#polling ?? this.#poll())
  }

  /** Drains the sessions (GOAWAY, in-flight requests finish), then records the node as stopped. */
  async close(): Promise<void> {
    if (this.#stopped) return
    this.#stopped = true
    clearTimeout(this.#pollTimer)
    clearInterval(this.#heartbeatTimer)
    await this.#polling
    await this.#reporting
    await this.#sessions?.close()
    const fields = this.#statusFields()
    await this.#nodes
      .markStopped(this.#options.nodeId, new Date().toISOString(), { status: fields.status === null ? null : 'UNAVAILABLE', reason: 'node stopped', code: null, sessions: 0 })
      .catch((err: unknown) => this.#log.warn({ err }, 'cannot record that this node stopped'))
  }
}

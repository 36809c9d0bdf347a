import { hostname } from 'node:os'
import type { ClusterNode } from '../../cluster/index.ts'
import type { AgentConfig } from '../../config/agent-config.ts'
import { TerminalProgress, describeMigration, type Logger, type ProgressOutput } from '../../observability/index.ts'
import type { Database } from '../../store/index.ts'
import type { AgentConnectorOptions } from '../connector/agent-connector.ts'
import type { OnpremConsole } from '../console/onprem-console.ts'
import type { InstanceNode } from './instance-node.ts'

/** A node's status as its instance sees it; `status` is null while the instance has no key. */
export type MemberStatus = NonNullable<InstanceNode['status']> | { status: null; reason: string; code?: undefined; since: string; sessions: 0; sessionsWanted: 0 }

export interface InstanceMember {
  readonly database: Database
  readonly node: InstanceNode
  /** with clusterListen: this node on its instance's cluster bus */
  readonly cluster: ClusterNode | undefined
  /** with consoleListen: the on-prem admin console */
  readonly console: OnpremConsole | undefined
  /** the node's status, `status: null` while the instance has no key */
  status(): MemberStatus
}

/**
 * An agent node as a member of an on-prem instance: the instance database (migrated, a --key given
 * too added there first), the node that takes its key from there and reports its status there,
 * and, when configured, its cluster bus membership (each status change published to the other
 * nodes) and the admin console. A failure part-way closes what was started.
 *
 * Loaded only with a database, so a single agent never carries the store.
 */
export async function startInstanceMember(
  config: Readonly<AgentConfig>,
  databaseUrl: string,
  connector: Omit<AgentConnectorOptions, 'key'>,
  deps: { nodeId: string; version: string; log: Logger; terminal?: ProgressOutput | undefined },
): Promise<InstanceMember> {
  const { nodeId, log } = deps
  const noKey = { status: null, reason: 'waiting for a security key', since: new Date().toISOString(), sessions: 0, sessionsWanted: 0 } as const
  const [{ openDatabase }, { InstanceNode }, { InstanceAdmin }, { KeySealer }] = await Promise.all([
    import('../../store/index.ts'),
    import('./instance-node.ts'),
    import('./instance-admin.ts'),
    import('./key-sealer.ts'),
  ])
  let database: Database | undefined
  let node: InstanceNode | undefined
  let cluster: ClusterNode | undefined
  try {
    const sealer = config.keyEncryptionFile === undefined ? undefined : await KeySealer.fromFile(config.keyEncryptionFile)
    const migrating = new TerminalProgress({ out: deps.terminal })
    const db = await openDatabase(databaseUrl, { onMigration: (step) => migrating.update(describeMigration(step)) }).finally(() => migrating.done())
    database = db
    if (db.migrated.length > 0) log.info({ migrations: db.migrated, database: db.dialect }, 'database migrated')
    if (config.keyText !== undefined) await new InstanceAdmin(db, { sealer }).addKey(config.keyText, `agent ${nodeId} (--key)`)
    const started = new InstanceNode(
      {
        nodeId,
        address: hostname(),
        version: deps.version,
        sessions: config.sessions,
        maxReplicas: config.replicas,
        connectGraceMs: config.connectGraceMs,
        keyPollMs: config.keyPollMs,
        heartbeatMs: config.nodeHeartbeatMs,
        connector,
        sealer,
      },
      { database: db, log },
    )
    node = started
    const status = (): MemberStatus => started.status ?? noKey
    await started.start()
    if (config.cluster !== undefined) {
      const { startClusterNode } = await import('../../cluster/index.ts')
      const bus = await startClusterNode({ ...config.cluster, nodeId, kind: 'agent' }, { database: db, log })
      cluster = bus
      started.on('status', () => {
        const st = status()
        bus.publish('node.status', { nodeId, status: st.status ?? 'NONE', reason: st.reason.slice(0, 500) })
      })
      bus.subscribe('node.status', (e) => log.debug({ peer: e.nodeId, status: e.status, reason: e.reason }, 'cluster peer status'))
    }
    let onpremConsole: OnpremConsole | undefined
    if (config.console !== undefined) {
      const { startOnpremConsole } = await import('../console/onprem-console.ts')
      onpremConsole = await startOnpremConsole(config.console, { database: db, admin: new InstanceAdmin(db, { sealer }), log, node: { id: nodeId, upstream: `${config.upstream.host}:${config.upstream.port}`, database: databaseUrl } })
    }
    return { database: db, node: started, cluster, console: onpremConsole, status }
  } catch (err) {
    await cluster?.close()
    await node?.close()
    await database?.close()
    throw err
  }
}

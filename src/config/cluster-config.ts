import { z } from 'zod'
import { TunnelError } from '../errors/index.ts'
import type { OptionDocs } from './config-options.ts'
import { durationMs } from './config-validation.ts'
import { parseListenAddress, type ListenAddress } from './listen-address.ts'

const duration = (def: number) => durationMs(z, def)

/**
 * The cluster bus options, shared by `apptunnel server` (replicas) and `apptunnel agent` (on-prem
 * nodes). Without `clusterListen` the process runs alone and none of the rest applies.
 */
export const clusterConfigShape = {
  clusterListen: z.string().min(1).optional(),
  clusterAdvertise: z.string().min(1).optional(),
  clusterAuthDisabled: z.boolean().default(false),
  clusterAuthTimeoutMs: duration(10_000),
  clusterAuthWarnIntervalMs: duration(60_000),
  clusterKeyPollMs: duration(60_000),
  clusterKeyGraceMs: duration(150_000),
  clusterStatsIntervalMs: duration(300_000),
  clusterHeartbeatMs: duration(5_000),
}

/** What docs/configuration.md and --help say of each cluster option; both sides take the same. */
export const clusterOptionDocs: OptionDocs<typeof clusterConfigShape> = {
  clusterListen: { description: "HOST:PORT of this node's cluster bus listener; setting it makes the process a cluster node." },
  clusterAdvertise: { value: 'host:port', description: 'HOST:PORT peers dial to reach this node; unset: the listen address (required for a wildcard listen).' },
  clusterAuthDisabled: { description: 'Troubleshooting only: skip authentication on every bus connection (set it on every node).' },
  clusterAuthTimeoutMs: { description: 'Deadline of a bus handshake, both sides.' },
  clusterAuthWarnIntervalMs: { description: 'The "authentication disabled" WARN repeats at most this often.' },
  clusterKeyPollMs: { description: 'How often the cluster key row is re-read; a deleted row yields a new key within this.' },
  clusterKeyGraceMs: { description: 'How long the previous cluster key stays accepted after a rotation; at least `clusterKeyPollMs`.' },
  clusterStatsIntervalMs: { description: 'Interval of the `[APPTUNNEL-STATS] [CLUSTER-AUTH]` log lines.' },
  clusterHeartbeatMs: { description: 'Membership heartbeat; a node silent for 3 heartbeats is taken for gone.' },
}

type ClusterConfigFields = z.output<z.ZodObject<typeof clusterConfigShape>>

export interface ClusterSettings {
  listen: ListenAddress
  /** HOST:PORT, or undefined for "the listen host and the port actually bound" */
  advertise: string | undefined
  authDisabled: boolean
  authTimeoutMs: number
  authWarnIntervalMs: number
  keyPollMs: number
  keyGraceMs: number
  statsIntervalMs: number
  heartbeatIntervalMs: number
}

const WILDCARD = new Set(['0.0.0.0', '::', '[::]'])

/** The cluster part of a process config, checked across fields; undefined when clustering is off. */
export function clusterSettingsFrom(c: ClusterConfigFields): ClusterSettings | undefined {
  if (c.clusterListen === undefined) {
    if (c.clusterAdvertise !== undefined) throw new TunnelError('TUN_ERR_CONFIG_INVALID', 'clusterAdvertise: needs clusterListen (--cluster-listen HOST:PORT)')
    return undefined
  }
  const listen = parseListenAddress(c.clusterListen, 'clusterListen')
  const problems: string[] = []
  let advertise: string | undefined
  if (c.clusterAdvertise !== undefined) {
    const a = parseListenAddress(c.clusterAdvertise, 'clusterAdvertise')
    if (a.port === 0 || WILDCARD.has(a.host)) problems.push(`clusterAdvertise: "${c.clusterAdvertise}" must name a reachable host and a port other than 0`)
    advertise = `${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`
  } else if (WILDCARD.has(listen.host)) {
    problems.push(`clusterAdvertise: required when clusterListen binds the wildcard address ${listen.host} (peers need an address they can dial)`)
  }
  if (c.clusterKeyGraceMs < c.clusterKeyPollMs) {
    problems.push(`clusterKeyGraceMs: ${c.clusterKeyGraceMs} ms is shorter than clusterKeyPollMs (${c.clusterKeyPollMs} ms): nodes would refuse the old key before every node has read the new one`)
  }
  if (problems.length > 0) throw new TunnelError('TUN_ERR_CONFIG_INVALID', `invalid cluster configuration: ${problems.join('; ')}`)
  return {
    listen,
    advertise,
    authDisabled: c.clusterAuthDisabled,
    authTimeoutMs: c.clusterAuthTimeoutMs,
    authWarnIntervalMs: c.clusterAuthWarnIntervalMs,
    keyPollMs: c.clusterKeyPollMs,
    keyGraceMs: c.clusterKeyGraceMs,
    statsIntervalMs: c.clusterStatsIntervalMs,
    heartbeatIntervalMs: c.clusterHeartbeatMs,
  }
}

import { z } from 'zod'
import { TunnelError } from '../errors/index.ts'
import { durationMs } from './config-validation.ts'
import { parseListenAddress, type ListenAddress } from './listen-address.ts'

const duration = (def: number) => durationMs(z, def)

/**
 * The cluster bus options, shared by `apptunnel server` (replicas) and `apptunnel agent` (on-prem
 * nodes). Without `clusterListen` the process runs alone and none of the rest applies.
 */
export const clusterConfigShape = {
  /** HOST:PORT of this node's cluster bus listener; enables the cluster */
  clusterListen: z.string().min(1).optional(),
  /** HOST:PORT peers dial to reach this node; default: the listen address (required for a wildcard listen) */
  clusterAdvertise: z.string().min(1).optional(),
  /** skip authentication on every bus connection (troubleshooting only; set on every node) */
  clusterAuthDisabled: z.boolean().default(false),
  /** absolute deadline of a bus handshake, server and client side */
  clusterAuthTimeoutMs: duration(10_000),
  /** the "authentication disabled (empty key)" WARN repeats at most this often */
  clusterAuthWarnIntervalMs: duration(60_000),
  /** how often the key row is re-read; a deleted row yields a new key within this */
  clusterKeyPollMs: duration(60_000),
  /** how long the previous key stays accepted after a rotation; at least clusterKeyPollMs */
  clusterKeyGraceMs: duration(150_000),
  /** interval of the [APPTUNNEL-STATS] [CLUSTER-AUTH] log lines */
  clusterStatsIntervalMs: duration(300_000),
  /** membership heartbeat; a node silent for 3 heartbeats is taken for gone */
  clusterHeartbeatMs: duration(5_000),
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

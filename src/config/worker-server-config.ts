import type { ClusterSettings } from './cluster-config.ts'
import { urlHost, type ListenAddress } from './listen-address.ts'
import type { ServerConfig } from './server-config.ts'
import { NODE_ID_ROOM, urlPort } from './workers-option.ts'

/**
 * The configuration worker `index` of `apptunnel server --workers N` runs with. The ingress is the
 * same for every worker (one port, shared through the supervisor). What is a node's own is moved
 * to port + index: the agent endpoint (so agents keep sessions to every worker and no caller is
 * forwarded between them), the metrics listener and the cluster bus; port 0 stays 0, a port of the
 * worker's own choosing. Keys keep naming the first worker's endpoint, as they name the single
 * server's. `hostNodeId` is the host's node id (kept in the data directory); the worker is
 * `<id>-w<index>`, the same across restarts.
 */
export function workerServerConfig(config: Readonly<ServerConfig>, index: number, hostNodeId: string): Readonly<ServerConfig> {
  const cluster: ClusterSettings = config.cluster!
  const publicUrl = config.publicUrl ?? `https://${urlHost(config.listen.host)}:${config.listen.port}`
  const endpoint = config.advertiseUrl ?? publicUrl
  const advertised = new URL(endpoint)
  advertised.port = String(urlPort(endpoint) + index)
  return Object.freeze({
    ...config,
    listen: shifted(config.listen, index),
    metricsListen: config.metricsListen === undefined ? undefined : shifted(config.metricsListen, index),
    publicUrl,
    advertiseUrl: advertised.origin,
    cluster: { ...cluster, listen: shifted(cluster.listen, index), advertise: cluster.advertise === undefined ? undefined : shiftedHostPort(cluster.advertise, index) },
    clusterNodeId: `${config.clusterNodeId ?? hostNodeId.slice(0, NODE_ID_ROOM)}-w${index}`,
  })
}

function shifted(address: ListenAddress, index: number): ListenAddress {
  return { host: address.host, port: address.port === 0 ? 0 : address.port + index }
}

function shiftedHostPort(hostPort: string, index: number): string {
  const at = hostPort.lastIndexOf(':')
  return `${hostPort.slice(0, at)}:${Number(hostPort.slice(at + 1)) + index}`
}

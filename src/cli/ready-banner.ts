import type { ServerConfig } from '../config/server-config.ts'
import type { TunnelServer } from '../server/start-server.ts'

/**
 * What a person needs once the server is up: where to sign in and where the first credentials
 * are, then the endpoints. The same facts are in the "tunnel server listening" log line.
 */
export function readyBanner(server: TunnelServer, config: ServerConfig): string {
  const { entry } = server
  const lines = [
    'apptunnel server ready',
    `  console: ${entry.consoleUrl}`,
    entry.consolePasswordFile === undefined
      ? `    sign in as ${entry.consoleUser}: its first password is not in ${config.dataDir} (changed, or written by the replica that started first); set one with: apptunnel admin set-password --data-dir ${config.dataDir}`
      : `    sign in as ${entry.consoleUser}, first password in ${entry.consolePasswordFile} (change it: apptunnel admin set-password --data-dir ${config.dataDir})`,
    `  admin API and agent endpoint: ${server.publicUrl}`,
    ...(entry.adminTokenFile === undefined ? [] : [`    admin API token in ${entry.adminTokenFile}`]),
    `  ingress: http://${server.ingressAddress.host}:${server.ingressAddress.port} (tunnels at http://<tunnel-id>.${config.ingressDomain}:${server.ingressAddress.port}/)`,
    `  data directory: ${config.dataDir}`,
    ...(server.cluster === undefined ? [] : [`  cluster node ${server.cluster.nodeId}: bus at ${server.cluster.address}`]),
    ...(server.metricsAddress === undefined ? [] : [`  metrics and health: http://${server.metricsAddress.host}:${server.metricsAddress.port}/metrics, /healthz, /readyz`]),
    `  create a tunnel: apptunnel tunnel create --name NAME --data-dir ${config.dataDir}`,
  ]
  return lines.join('\n') + '\n'
}

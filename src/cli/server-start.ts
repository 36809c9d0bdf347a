import type { Command } from 'commander'
import type { ServerConfig } from '../config/server-config.ts'
import type { TunnelServer } from '../server/start-server.ts'
import { loadConfigFromSources, optionsOfSide, readConfigFileFor } from '../config/config-sources.ts'
import { createLogger, logOptionsFromEnv } from '../observability/index.ts'
import { addClusterOptions } from './cluster-options.ts'
import { configFlagValues, flagLayer, givenOnCommandLine } from './config-flags.ts'
import { closeOnSignal, runCommand } from './run-command.ts'
import { youngGenerationMayGrow } from './young-generation.ts'

function int(v: string): number {
  return Number(v)
}

export function registerServerCommand(program: Command): void {
  const command = program
    .command('server')
    .description('run the tunnel server (admin API + agent endpoint over HTTPS, and the ingress)')
    .option('--config <file>', 'YAML or JSON file of options (docs/configuration.md); flags and APPTUNNEL_* variables override it')
    .option('--data-dir <dir>', 'data directory (database, certificate, admin token)', '.apptunnel')
    .option('--listen <host:port>', 'HTTPS listener for the admin API and agents', '127.0.0.1:8443')
    .option('--ingress-listen <host:port>', 'ingress listener of application link URLs (private by default)', '127.0.0.1:8080')
    .option('--database <url>', 'SQLite file path or postgres:// URL (default: apptunnel.db in the data directory)')
    .option('--public-url <url>', 'agent endpoint as agents reach it (goes into security keys)')
    .option('--advertise-url <url>', 'with --cluster-listen: the https URL agents dial to reach this replica directly (default --public-url)')
    .option('--ingress-domain <domain>', 'tunnels answer at <tunnel-id>.<domain>', 'localhost')
    .option('--ingress-public-url <template>', 'application link URL template, e.g. https://{id}.tunnels.example.com/')
    .option('--tls-cert <file>', 'PEM certificate (default: self-signed, generated into the data directory)')
    .option('--tls-key <file>', 'PEM private key for --tls-cert')
    .option('--org-name <name>', 'name of the organization created at first start', 'default')
    .option('--ping-interval-ms <ms>', 'keepalive ping interval towards agents', int)
    .option('--ping-timeout-ms <ms>', 'an agent missing a ping answer this long is dropped', int)
    .option('--upstream-response-timeout-ms <ms>', 'upstream must start answering within this time (504)', int)
    .option('--head-timeout-ms <ms>', 'a request head must arrive within this time (408)', int)
    .option('--body-timeout-ms <ms>', 'window in which a request body must bring --body-min-bytes-per-second × window (408)', int)
    .option('--body-min-bytes-per-second <n>', 'slowest request body the ingress accepts (default 500)', int)
    .option('--upgraded-idle-timeout-ms <ms>', 'an upgraded ingress connection (WebSocket) with no traffic this long is closed (default 600000)', int)
    .option('--replica-ready-grace-ms <ms>', "a replica's /readyz waits this long from start for agents to dial it before a path to a peer replica counts (default 30000)", int)
    .option('--max-connections-per-source <n>', 'concurrent ingress connections one source address (IPv6: /64) may hold per tunnel; 0: no cap (default 250)', int)
    .option('--tls-handshake-timeout-ms <ms>', 'HTTPS listener: a TLS handshake must finish within this time (default 10000)', int)
    .option('--api-head-timeout-ms <ms>', 'HTTPS listener: a request head must arrive within this time (default 20000)', int)
    .option('--api-request-timeout-ms <ms>', 'HTTPS listener: a whole request must arrive within this time (default 60000)', int)
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent', 'info')
    .option('--metrics-listen <host:port>', 'plain HTTP listener for /metrics, /healthz and /readyz (off by default; no authentication: keep it private)')
    .option('--access-log <file>', 'append one JSON line per ingress request to this file (created 0600), or - for standard output; reopened on SIGHUP (off by default)')
    .option('--cluster-node-id <id>', 'cluster node id of this replica (default: kept in the data directory)')
  addClusterOptions(command).action((opts: Record<string, string | number | undefined>, cmd: Command) =>
      runCommand(async () => {
        const o = givenOnCommandLine(cmd, opts)
        const input = configFlagValues(cmd, o, optionsOfSide('server').map((option) => option.name))
        const file = await readConfigFileFor('server', opts.config as string | undefined)
        const { config } = loadConfigFromSources('server', { file, env: process.env, flags: flagLayer(input) })
        // Loaded here, not at the top: each command pulls in only what it runs (memory, start time).
        const { startServer } = await import('../server/start-server.ts')
        const log = createLogger({ level: config.logLevel, name: 'apptunnel-server', ...logOptionsFromEnv() })
        const server = await startServer(config, { log, terminal: process.stderr })
        youngGenerationMayGrow()
        // The handlers go in before the banner: whoever reads "ready" may send a signal at once,
        // and one arriving before them would end the process without a graceful close.
        const stopped = closeOnSignal(() => server.close())
        // logrotate's postrotate sends SIGHUP: the access log starts a fresh file.
        if (config.accessLog !== undefined) process.on('SIGHUP', () => server.reopenLogs())
        process.stderr.write(readyBanner(server, config))
        await stopped
      }),
    )
}

/**
 * What a person needs once the server is up: where to sign in and where the first credentials
 * are, then the endpoints. The same facts are in the "tunnel server listening" log line.
 */
function readyBanner(server: TunnelServer, config: ServerConfig): string {
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

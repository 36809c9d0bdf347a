import type { Command } from 'commander'
import type { ServerConfig } from '../config/server-config.ts'
import type { TunnelServer } from '../server/start-server.ts'
import { loadConfigFromSources, optionsOfSide, readConfigFileFor } from '../config/config-sources.ts'
import { createLogger, logOptionsFromEnv } from '../observability/index.ts'
import { addConfigFlags, configFlagValues, flagLayer, givenOnCommandLine } from './config-flags.ts'
import { closeOnSignal, runCommand } from './run-command.ts'
import { youngGenerationMayGrow } from './young-generation.ts'

export function registerServerCommand(program: Command): void {
  const command = program
    .command('server')
    .description('run the tunnel server (admin API + agent endpoint over HTTPS, and the ingress)')
    .option('--config <file>', 'YAML or JSON file of options (docs/configuration.md); flags and APPTUNNEL_* variables override it')
  addConfigFlags(command, optionsOfSide('server')).action((opts: Record<string, string | number | undefined>, cmd: Command) =>
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

import { readFile } from 'node:fs/promises'
import { Option, type Command } from 'commander'
import { loadConfigFromSources, optionsOfSide, readConfigFileFor, type ConfigLayer } from '../config/config-sources.ts'
import { TunnelError } from '../errors/index.ts'
import { createLogger, logOptionsFromEnv } from '../observability/index.ts'
import { proxyEnvironment } from '../transport/proxy-settings.ts'
import { addClusterOptions } from './cluster-options.ts'
import { configFlagValues, flagLayer, givenOnCommandLine } from './config-flags.ts'
import { definedOptions } from './defined-options.ts'
import { closeOnSignal, runCommand } from './run-command.ts'
import { youngGenerationMayGrow } from './young-generation.ts'

function int(v: string): number {
  return Number(v)
}

export function registerAgentCommand(program: Command): void {
  const command = program
    .command('agent')
    .description('run the on-prem agent: dial out to the tunnel server and forward to the upstream port')
    .option('--config <file>', 'YAML or JSON file of options (docs/configuration.md); flags and APPTUNNEL_* variables override it')
    .option('--key <key>', 'security key (or --key-file, or env APPTUNNEL_KEY); with --database it is optional: apptunnel key add stores it for every node')
    .option('--key-file <file>', 'file holding the security key')
    .option('--upstream <host:port>', 'plain-HTTP upstream port of the on-prem app, e.g. 127.0.0.1:8081')
    .option('--data-dir <dir>', 'data directory (keeps the node id)')
    .option('--database <url>', 'instance database (SQLite file or postgres:// URL), shared by the nodes of a cluster')
    .option('--node-id <id>', 'node id (default: kept in the data directory)')
    .option('--instance <name>', 'name of the on-prem instance shown on the server')
    .option('--ca-file <file>', 'PEM CA bundle to trust instead of the system CAs')
    .option('--proxy <url>', 'HTTP CONNECT proxy to the tunnel server, http://[user:password@]host:port (default: env https_proxy/HTTPS_PROXY; \'\' for none)')
    // Commander reads a --no-X flag as "X off"; this one is a list of its own (curl's NO_PROXY).
    .addOption(Object.assign(new Option('--no-proxy <list>', 'servers to dial directly despite --proxy: host, .domain, address, CIDR, :port, * (default: env no_proxy/NO_PROXY)'), { negate: false }))
    .option('--console-listen <host:port>', 'HTTPS listener of the on-prem admin console, e.g. 127.0.0.1:9443 (default off; needs --database and --data-dir)')
    .option('--console-tls-cert <file>', 'PEM certificate of the console (default: self-signed, kept in the data directory)')
    .option('--console-tls-key <file>', 'PEM private key for --console-tls-cert')
    .option('--sessions <n>', 'sessions this node keeps to the server (default 2)', int)
    .option('--replicas <n>', 'when the server runs replicas: keep --sessions sessions to at most this many of them (default all)', int)
    .option('--connect-grace-ms <ms>', 'a node not yet connected shows CONNECTING this long before UNAVAILABLE (default 30000)', int)
    .option('--key-poll-ms <ms>', 'how often the instance key is re-read from --database (default 1000)', int)
    .option('--key-encryption-file <file>', 'key file the instance key is encrypted with in --database (same file on every node; env APPTUNNEL_KEY_ENCRYPTION_FILE)')
    .option('--node-heartbeat-ms <ms>', 'how often this node writes its status to --database (default 5000)', int)
    .option('--drain-timeout-ms <ms>', 'on SIGTERM, how long in-flight requests may take to finish (default 10000)', int)
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent', 'info')
    .option('--metrics-listen <host:port>', 'plain HTTP listener for /metrics, /healthz and /readyz (off by default; no authentication: keep it private)')
  addClusterOptions(command).action((opts: Record<string, string | undefined> & { sessions?: number; connectGraceMs?: number; keyPollMs?: number; nodeHeartbeatMs?: number; drainTimeoutMs?: number }, cmd: Command) =>
      runCommand(async () => {
        const o = givenOnCommandLine(cmd, opts)
        let key = o.key
        if (key === undefined && o.keyFile !== undefined) {
          key = await readFile(o.keyFile, 'utf8').catch((err: NodeJS.ErrnoException) => {
            throw new TunnelError('TUN_ERR_CLI_USAGE', `cannot read --key-file ${o.keyFile}: ${err.code ?? err.message}`)
          })
        }
        // --key-file is no option of its own: what it holds is the key.
        const input = definedOptions({ ...configFlagValues(cmd, o, optionsOfSide('agent').map((option) => option.name)), key })
        const file = await readConfigFileFor('agent', opts.config)
        const flags = flagLayer(input, o.key === undefined && o.keyFile !== undefined ? { key: '--key-file' } : {})
        const { config } = loadConfigFromSources('agent', { file, env: process.env, flags, hostDefaults: hostProxyDefaults(process.env) })
        // Loaded here, not at the top: each command pulls in only what it runs (memory, start time).
        const { startAgent } = await import('../agent/start-agent.ts')
        const log = createLogger({ level: config.logLevel, name: 'apptunnel-agent', ...logOptionsFromEnv() })
        const agent = await startAgent(config, { log, terminal: process.stderr })
        youngGenerationMayGrow()
        await closeOnSignal(() => agent.close())
      }),
    )
}

/**
 * https_proxy/HTTPS_PROXY and no_proxy/NO_PROXY are the host's general settings, so they rank below
 * the config file: an explicit `proxy:` in apptunnel's own file wins over the machine default.
 */
function hostProxyDefaults(env: NodeJS.ProcessEnv): ConfigLayer {
  const { proxy, noProxy } = proxyEnvironment(env)
  const nameOf = (lower: string) => (env[lower] !== undefined && env[lower]!.trim() !== '' ? lower : lower.toUpperCase())
  return flagLayer({ proxy, noProxy }, {}, { proxy: `env ${nameOf('https_proxy')}`, noProxy: `env ${nameOf('no_proxy')}` })
}

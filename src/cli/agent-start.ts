import { readFile } from 'node:fs/promises'
import type { Command } from 'commander'
import { loadAgentConfig, type AgentConfigInput } from '../config/agent-config.ts'
import { TunnelError } from '../errors/index.ts'
import { createLogger } from '../observability/index.ts'
import { addClusterOptions, clusterOptionValues } from './cluster-options.ts'
import { definedOptions } from './defined-options.ts'
import { closeOnSignal, runCommand } from './run-command.ts'

function int(v: string): number {
  return Number(v)
}

export function registerAgentCommand(program: Command): void {
  const command = program
    .command('agent')
    .description('run the on-prem agent: dial out to the tunnel server and forward to the upstream port')
    .option('--key <key>', 'security key (or --key-file, or env APPTUNNEL_KEY); with --database it is optional: apptunnel key add stores it for every node')
    .option('--key-file <file>', 'file holding the security key')
    .requiredOption('--upstream <host:port>', 'plain-HTTP upstream port of the on-prem app, e.g. 127.0.0.1:8081')
    .option('--data-dir <dir>', 'data directory (keeps the node id)')
    .option('--database <url>', 'instance database (SQLite file or postgres:// URL), shared by the nodes of a cluster')
    .option('--node-id <id>', 'node id (default: kept in the data directory)')
    .option('--instance <name>', 'name of the on-prem instance shown on the server')
    .option('--ca-file <file>', 'PEM CA bundle to trust instead of the system CAs')
    .option('--sessions <n>', 'sessions this node keeps to the server (default 2)', int)
    .option('--connect-grace-ms <ms>', 'a node not yet connected shows CONNECTING this long before UNAVAILABLE (default 30000)', int)
    .option('--key-poll-ms <ms>', 'how often the instance key is re-read from --database (default 1000)', int)
    .option('--key-encryption-file <file>', 'key file the instance key is encrypted with in --database (same file on every node; env APPTUNNEL_KEY_ENCRYPTION_FILE)')
    .option('--node-heartbeat-ms <ms>', 'how often this node writes its status to --database (default 5000)', int)
    .option('--drain-timeout-ms <ms>', 'on SIGTERM, how long in-flight requests may take to finish (default 10000)', int)
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent', 'info')
  addClusterOptions(command).action((o: Record<string, string | undefined> & { sessions?: number; connectGraceMs?: number; keyPollMs?: number; nodeHeartbeatMs?: number; drainTimeoutMs?: number }) =>
      runCommand(async () => {
        let key = o.key ?? process.env.APPTUNNEL_KEY
        if (key === undefined && o.keyFile !== undefined) {
          key = await readFile(o.keyFile, 'utf8').catch((err: NodeJS.ErrnoException) => {
            throw new TunnelError('TUN_ERR_CLI_USAGE', `cannot read --key-file ${o.keyFile}: ${err.code ?? err.message}`)
          })
        }
        if (key === undefined && o.database === undefined) {
          throw new TunnelError('TUN_ERR_CLI_USAGE', 'a security key is required: --key KEY, --key-file FILE or APPTUNNEL_KEY (or --database DB, where apptunnel key add stores it)')
        }
        const input = definedOptions({
          key,
          upstream: o.upstream,
          dataDir: o.dataDir,
          database: o.database,
          nodeId: o.nodeId,
          instance: o.instance,
          caFile: o.caFile,
          sessions: o.sessions,
          connectGraceMs: o.connectGraceMs,
          keyPollMs: o.keyPollMs,
          nodeHeartbeatMs: o.nodeHeartbeatMs,
          keyEncryptionFile: o.keyEncryptionFile ?? process.env.APPTUNNEL_KEY_ENCRYPTION_FILE,
          drainTimeoutMs: o.drainTimeoutMs,
          logLevel: o.logLevel,
          ...clusterOptionValues(o),
        })
        const config = loadAgentConfig(input as AgentConfigInput)
        // Loaded here, not at the top: each command pulls in only what it runs (memory, start time).
        const { startAgent } = await import('../agent/build-agent.ts')
        const log = createLogger({ level: config.logLevel, name: 'apptunnel-agent' })
        const agent = await startAgent(config, { log })
        await closeOnSignal(() => agent.close())
      }),
    )
}

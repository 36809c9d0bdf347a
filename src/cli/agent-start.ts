import { readFile } from 'node:fs/promises'
import type { Command } from 'commander'
import { loadConfigFromSources, optionsOfSide, readConfigFileFor, type ConfigLayer } from '../config/config-sources.ts'
import { TunnelError } from '../errors/index.ts'
import { createLogger, logOptionsFromEnv } from '../observability/index.ts'
import { proxyEnvironment } from '../transport/proxy-settings.ts'
import { addConfigFlags, configFlagValues, flagLayer, givenOnCommandLine } from './config-flags.ts'
import { definedOptions } from './defined-options.ts'
import { closeOnSignal, runCommand } from './run-command.ts'
import { youngGenerationMayGrow } from './young-generation.ts'

export function registerAgentCommand(program: Command): void {
  const command = program
    .command('agent')
    .description('run the on-prem agent: dial out to the tunnel server and forward to the upstream port')
    .option('--config <file>', 'YAML or JSON file of options (docs/configuration.md); flags and APPTUNNEL_* variables override it')
    .option('--key-file <file>', 'file holding the security key (instead of --key)')
  addConfigFlags(command, optionsOfSide('agent')).action((opts: Record<string, string | undefined>, cmd: Command) =>
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

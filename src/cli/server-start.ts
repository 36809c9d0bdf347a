import type { Command } from 'commander'
import { loadConfigFromSources, optionsOfSide, readConfigFileFor } from '../config/config-sources.ts'
import { createLogger, logOptionsFromEnv } from '../observability/index.ts'
import { addConfigFlags, configFlagValues, flagLayer, givenOnCommandLine } from './config-flags.ts'
import { readyBanner } from './ready-banner.ts'
import { closeOnSignal, runCommand } from './run-command.ts'
import { workerIndex } from './server-worker.ts'
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
        const log = createLogger({ level: config.logLevel, name: 'apptunnel-server', ...logOptionsFromEnv() })
        // --workers N: this process supervises N workers, or is one of them (src/cli/server-workers.ts).
        const index = workerIndex()
        if (index !== undefined) {
          const { runServerWorker } = await import('./server-worker.ts')
          return await runServerWorker(config, index, log.child({ worker: index }))
        }
        if (config.workers > 1) {
          const { superviseWorkers } = await import('./server-workers.ts')
          return await superviseWorkers(config, log.child({ component: 'supervisor' }))
        }
        // Loaded here, not at the top: each command pulls in only what it runs (memory, start time).
        const { startServer } = await import('../server/start-server.ts')
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

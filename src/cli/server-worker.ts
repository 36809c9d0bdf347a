import cluster from 'node:cluster'
import { resolveNodeId } from '../config/node-identity.ts'
import type { ServerConfig } from '../config/server-config.ts'
import { workerServerConfig } from '../config/worker-server-config.ts'
import type { Logger } from '../observability/index.ts'
import { readyBanner } from './ready-banner.ts'
import { closeOnSignal } from './run-command.ts'
import { youngGenerationMayGrow } from './young-generation.ts'

/** Tells a process forked by the supervisor which worker it is (read only in a cluster worker). */
export const WORKER_INDEX_VARIABLE = 'APPTUNNEL_WORKER_INDEX'

/** Worker → supervisor: listening, with its banner and a line about its own listeners. */
export interface WorkerReadyMessage {
  type: 'apptunnel-worker-ready'
  index: number
  banner: string
  summary: string
}

/** Supervisor → worker: drain and exit, as on SIGTERM. */
export interface WorkerDrainMessage {
  type: 'apptunnel-worker-drain'
}

/** This process's worker index when the supervisor forked it; undefined in any other process. */
export function workerIndex(): number | undefined {
  if (!cluster.isWorker) return undefined
  const index = Number(process.env[WORKER_INDEX_VARIABLE])
  return Number.isInteger(index) && index >= 0 ? index : undefined
}

/**
 * Runs worker `index` of `apptunnel server --workers N`: a whole server with the worker's own
 * listeners (src/config/worker-server-config.ts), sharing the ingress port through the
 * supervisor. It drains on SIGTERM/SIGINT like a single server, and also when the supervisor asks
 * (a terminal's Ctrl-C reaches the workers too; a second signal would end a drain at once, so the
 * supervisor asks over the IPC channel instead of signalling).
 */
export async function runServerWorker(config: Readonly<ServerConfig>, index: number, log: Logger): Promise<void> {
  const { startServer } = await import('../server/start-server.ts')
  // Worker 0 starts alone, so it is the one that writes the host's node id on a first start.
  const own = workerServerConfig(config, index, await resolveNodeId({ dataDir: config.dataDir }))
  let server: Awaited<ReturnType<typeof startServer>>
  try {
    server = await startServer(own, { log, terminal: index === 0 ? process.stderr : undefined })
  } catch (err) {
    // node:cluster holds a worker's IPC channel open until it disconnects: without this, a worker
    // that failed to start would never exit, and the supervisor would wait for it forever.
    cluster.worker!.disconnect()
    throw err
  }
  youngGenerationMayGrow()

  let closing: Promise<void> | undefined
  const close = (): Promise<void> => (closing ??= server.close())
  let onMessage: ((message: unknown) => void) | undefined
  const stopped = new Promise<void>((resolve) => {
    void closeOnSignal(close).then(resolve)
    onMessage = (message) => {
      if ((message as Partial<WorkerDrainMessage> | null)?.type !== 'apptunnel-worker-drain') return
      close().then(resolve, (err: unknown) => {
        process.stderr.write(`apptunnel: worker ${index} shutdown failed: ${String(err)}\n`)
        process.exitCode = 1
        resolve()
      })
    }
    process.on('message', onMessage)
  })
  const reopen = (): void => server.reopenLogs()
  if (config.accessLog !== undefined) process.on('SIGHUP', reopen)

  const summary = [
    `worker ${index} (pid ${process.pid}): agents at ${own.advertiseUrl}`,
    `bus ${server.cluster!.address}`,
    ...(server.metricsAddress === undefined ? [] : [`metrics http://${server.metricsAddress.host}:${server.metricsAddress.port}`]),
  ].join(', ')
  const ready: WorkerReadyMessage = { type: 'apptunnel-worker-ready', index, banner: readyBanner(server, own), summary }
  process.send!(ready)
  await stopped
  process.off('message', onMessage!)
  process.off('SIGHUP', reopen)
  // Its servers are closed already; this lets the IPC channel go, so the process can end.
  cluster.worker!.disconnect()
}

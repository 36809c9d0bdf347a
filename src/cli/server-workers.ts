import cluster, { type Worker } from 'node:cluster'
import type { ServerConfig } from '../config/server-config.ts'
import { TunnelError } from '../errors/index.ts'
import type { Logger } from '../observability/index.ts'
import { Backoff } from '../transport/backoff.ts'
import { WORKER_INDEX_VARIABLE, type WorkerDrainMessage, type WorkerReadyMessage } from './server-worker.ts'

// A worker that dies is started again after a back-off from half a second up to half a minute;
// one that had run this long first is taken for healthy, and its next death starts the back-off over.
const RESTART_INITIAL_MS = 500
const RESTART_MAX_MS = 30_000
const STABLE_AFTER_MS = 60_000

interface WorkerSlot {
  readonly index: number
  readonly backoff: Backoff
  worker: Worker | undefined
  /** when its current process said it was ready; undefined while it starts */
  readyAt: number | undefined
  restartTimer: NodeJS.Timeout | undefined
  exited: Promise<number> | undefined
}

/**
 * The supervisor of `apptunnel server --workers N`: forks N workers (src/cli/server-worker.ts)
 * with node:cluster so that they share the ingress port, each a node of one cluster on the shared
 * database. Worker 0 starts alone and bootstraps a first start (schema, admin, certificate, node
 * id); the rest start once it is ready. SIGTERM and SIGINT drain every worker, then the supervisor
 * returns; SIGHUP reaches every worker when there is an access log to reopen. A worker that dies
 * is started again with back-off.
 */
export async function superviseWorkers(config: Readonly<ServerConfig>, log: Logger, output: NodeJS.WritableStream = process.stderr): Promise<void> {
  // Round-robin: the supervisor accepts every ingress connection and hands them to the workers in
  // turn. The default on Linux lets the workers accept from the shared socket themselves, and the
  // kernel then wakes whichever it likes, often the same busy one: connections pile up unevenly.
  // It must be chosen before the first fork.
  cluster.schedulingPolicy = cluster.SCHED_RR
  const slots: WorkerSlot[] = Array.from({ length: config.workers }, (_, index) => ({
    index,
    backoff: new Backoff({ initialMs: RESTART_INITIAL_MS, maxMs: RESTART_MAX_MS }),
    worker: undefined,
    readyAt: undefined,
    restartTimer: undefined,
    exited: undefined,
  }))
  let running = false
  let stopping = false

  const fork = (slot: WorkerSlot): Promise<WorkerReadyMessage> => {
    const worker = cluster.fork({ [WORKER_INDEX_VARIABLE]: String(slot.index) })
    slot.worker = worker
    slot.readyAt = undefined
    // A message to a worker that is exiting fails on its channel; the exit says the rest.
    worker.on('error', (err: Error) => log.debug({ worker: slot.index, err: err.message }, 'server worker channel error'))
    slot.exited = new Promise((resolve) => {
      worker.once('exit', (code: number | null, signal: string | null) => {
        if (slot.worker === worker) slot.worker = undefined
        if (running && !stopping) restartLater(slot, worker, code, signal)
        resolve(code ?? 1)
      })
    })
    return new Promise((resolve, reject) => {
      const onMessage = (message: Partial<WorkerReadyMessage> | null): void => {
        if (message?.type !== 'apptunnel-worker-ready') return
        worker.off('message', onMessage)
        worker.off('exit', onEarlyExit)
        slot.readyAt = Date.now()
        resolve(message as WorkerReadyMessage)
      }
      const onEarlyExit = (code: number | null, signal: string | null): void => {
        worker.off('message', onMessage)
        reject(new TunnelError('TUN_ERR_SERVER_WORKER_FAILED', `server worker ${slot.index} exited ${signal === null ? `with code ${String(code)}` : `on ${signal}`} before it was ready (its error is above)`))
      }
      worker.on('message', onMessage)
      worker.once('exit', onEarlyExit)
    })
  }

  const restartLater = (slot: WorkerSlot, worker: Worker, code: number | null, signal: string | null): void => {
    if (slot.readyAt !== undefined && Date.now() - slot.readyAt >= STABLE_AFTER_MS) slot.backoff.reset()
    const delayMs = slot.backoff.next()
    log.warn({ worker: slot.index, workerPid: worker.process.pid, code, signal, restartInMs: delayMs }, 'server worker exited unexpectedly; restarting it')
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = undefined
      fork(slot).then(
        (ready) => log.info({ worker: slot.index, workerPid: slot.worker?.process.pid, summary: ready.summary }, 'server worker restarted'),
        // Its exit has scheduled the next attempt already.
        (err: unknown) => {
          if (!stopping) log.warn({ worker: slot.index, err: (err as Error).message }, 'server worker failed to start again')
        },
      )
    }, delayMs)
  }

  /** Drains the ready workers, stops the ones still starting, and waits for every one to exit. */
  const stopAll = async (): Promise<void> => {
    stopping = true
    for (const slot of slots) {
      clearTimeout(slot.restartTimer)
      slot.restartTimer = undefined
      const worker = slot.worker
      if (worker === undefined) continue
      // A worker still starting listens for neither message nor signal yet: SIGTERM ends it.
      if (slot.readyAt === undefined) worker.process.kill('SIGTERM')
      else if (worker.isConnected()) worker.send({ type: 'apptunnel-worker-drain' } satisfies WorkerDrainMessage)
    }
    const codes = await Promise.all(slots.map((slot) => slot.exited ?? Promise.resolve(0)))
    if (codes.some((code) => code !== 0)) process.exitCode = 1
  }

  let stopped: Promise<void> | undefined
  let signalled = false
  let stopRequested!: () => void
  const stopRequest = new Promise<void>((resolve) => (stopRequested = resolve))
  const onStopSignal = (signal: NodeJS.Signals): void => {
    if (stopped !== undefined) {
      // A second signal: no more waiting, as with a single server.
      for (const slot of slots) slot.worker?.process.kill('SIGKILL')
      process.exit(130)
    }
    output.write(`apptunnel: ${signal} received, draining ${config.workers} workers\n`)
    signalled = true
    stopped = stopAll()
    stopRequested()
  }
  const onHangUp = (): void => {
    // A worker without an access log has nothing to reopen, and SIGHUP would end it.
    if (config.accessLog === undefined) return void log.info('SIGHUP: no access log to reopen')
    for (const slot of slots) if (slot.readyAt !== undefined) slot.worker?.process.kill('SIGHUP')
  }
  // In place before the first fork: a signal arriving while the workers start still drains them.
  process.on('SIGTERM', onStopSignal)
  process.on('SIGINT', onStopSignal)
  process.on('SIGHUP', onHangUp)
  try {
    let readies: WorkerReadyMessage[]
    try {
      const first = await fork(slots[0]!)
      readies = [first, ...(await Promise.all(slots.slice(1).map(fork)))]
    } catch (err) {
      stopped ??= stopAll()
      await stopped
      // Stopped by a signal while starting: the workers it ended are no failure.
      if (signalled) return
      throw err
    }
    if (!signalled) {
      running = true
      output.write(workersBanner(readies))
    }
    await stopRequest
    await stopped
  } finally {
    process.off('SIGTERM', onStopSignal)
    process.off('SIGINT', onStopSignal)
    process.off('SIGHUP', onHangUp)
  }
}

/** Worker 0's banner (the console and the credentials are the same for all), then each worker's own listeners. */
function workersBanner(readies: readonly WorkerReadyMessage[]): string {
  const [first] = readies
  return first!.banner + `  ${readies.length} workers share the ingress port (round-robin):\n` + readies.map((r) => `    ${r.summary}\n`).join('')
}

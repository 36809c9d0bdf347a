import { randomBytes } from 'node:crypto'
import { connect } from 'node:net'
import { performance } from 'node:perf_hooks'
import { Worker } from 'node:worker_threads'
import { AuthStats, type AuthStatsJson } from '../../src/cluster/auth-stats.ts'
import { initiateHandshake } from '../../src/cluster/auth/client-handshake.ts'
import { NonceRegistry } from '../../src/cluster/auth/nonce-registry.ts'
import { KeyRing } from '../../src/cluster/key-ring.ts'

export interface ClusterHandshakeBench {
  handshakesPerSec: number
  /** time to authenticate on the client side, from TCP established to the verified server proof */
  p50Ms: number
  p99Ms: number
  /** CPU time of the accepting side per handshake (its own thread) */
  serverCpuMsPerHandshake: number
  count: number
  concurrency: number
  failures: number
  /** 'thread': the server thread's CPU from /proc (10 ms ticks); 'event-loop': its event loop's active time */
  cpuSource: 'thread' | 'event-loop'
  /** the server side's statistics over the measured handshakes */
  serverStats: AuthStatsJson
}

const WARMUP_HANDSHAKES = 200

/**
 * Measures full cluster handshakes over real loopback TCP, in process: the accepting side runs in
 * a worker thread (so its CPU can be read on its own), `concurrency` clients dial from this thread
 * until `count` handshakes are done. A warm-up of 200 handshakes comes first and is not counted.
 * Must run under tsx (the worker loads the TypeScript sources through it).
 */
export async function benchClusterHandshakes(options: { count: number; concurrency: number }): Promise<ClusterHandshakeBench> {
  const { count, concurrency } = options
  if (!Number.isInteger(count) || count < 1 || count > 1_000_000) throw new RangeError(`count must be 1..1000000, not ${count}`)
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 1000) throw new RangeError(`concurrency must be 1..1000, not ${concurrency}`)

  const secret = randomBytes(32).toString('base64url')
  const entry = new URL('./cluster-bench-server.ts', import.meta.url).href
  const tsx = import.meta.resolve('tsx/esm/api')
  const worker = new Worker(`import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(entry)}) })`, {
    eval: true,
    workerData: { secret },
  })
  const messages: Array<(m: { type: string } & Record<string, unknown>) => void> = []
  const next = <T>(type: string): Promise<T> =>
    new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err)
      worker.once('error', onError)
      messages.push((m) => {
        worker.off('error', onError)
        if (m.type === type) resolve(m as T)
        else reject(new Error(`bench worker said ${m.type}, expected ${type}`))
      })
    })
  worker.on('message', (m: { type: string }) => messages.shift()?.(m))

  try {
    const { port } = await next<{ port: number }>('ready')
    const keys = new KeyRing({ graceMs: 60_000 })
    keys.adopt(secret)
    const nonces = new NonceRegistry()
    const stats = new AuthStats()

    const one = (): Promise<number> =>
      new Promise<number>((resolve, reject) => {
        const socket = connect({ host: '127.0.0.1', port, noDelay: true })
        socket.once('error', reject)
        socket.once('connect', () => {
          initiateHandshake(socket, { nodeId: 'bench-client', expectedPeerId: 'bench-server', keys, nonces, timeoutMs: 10_000, stats }).then(
            (peer) => {
              socket.destroy()
              resolve(peer.timeToAuthMs)
            },
            reject,
          )
        })
      })
    const run = async (n: number): Promise<{ times: number[]; failures: number; wallMs: number }> => {
      const times: number[] = []
      let failures = 0
      let started = 0
      const t0 = performance.now()
      await Promise.all(
        Array.from({ length: Math.min(concurrency, n) }, async () => {
          while (started < n) {
            started++
            try {
              times.push(await one())
            } catch {
              failures++
            }
          }
        }),
      )
      return { times, failures, wallMs: performance.now() - t0 }
    }

    await run(Math.min(WARMUP_HANDSHAKES, count))
    worker.postMessage('start')
    await next('started')
    const measured = await run(count)
    worker.postMessage('stop')
    const server = await next<{ cpuMs: number; cpuSource: 'thread' | 'event-loop'; total: AuthStatsJson }>('stopped')

    const sorted = measured.times.sort((a, b) => a - b)
    const pct = (p: number): number => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!)
    const round = (v: number): number => Math.round(v * 1000) / 1000
    return {
      handshakesPerSec: Math.round((measured.times.length / measured.wallMs) * 1000),
      p50Ms: round(pct(50)),
      p99Ms: round(pct(99)),
      serverCpuMsPerHandshake: round(server.cpuMs / Math.max(1, server.total.authsSuccess)),
      count,
      concurrency,
      failures: measured.failures,
      cpuSource: server.cpuSource,
      serverStats: server.total,
    }
  } finally {
    worker.postMessage('close')
    await Promise.race([new Promise((r) => worker.once('exit', r)), new Promise((r) => setTimeout(r, 2000).unref())])
    await worker.terminate()
  }
}

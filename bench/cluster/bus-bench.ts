import { createSecretKey, randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { silentLogger } from '../../src/observability/index.ts'
import { ClusterAuthStats } from '../../src/cluster/auth-stats.ts'
import { FRAME_EVENT, busFrameFormat, encodeEventPayload } from '../../src/cluster/bus/bus-messages.ts'
import { ClusterBus } from '../../src/cluster/bus/cluster-bus.ts'
import { KeyRing } from '../../src/cluster/key-ring.ts'
import { FrameOpener, FrameSealer } from '../../src/cluster/wire/frame-seal.ts'

export interface ClusterBusEventBench {
  /** events published on one node and delivered to the other's subscriber, per second of wall time */
  eventsPerSec: number
  /** CPU of the process (both nodes: encode, send, receive, decode, validate, acknowledge) per event */
  cpuUsPerEvent: number
  count: number
  /** events in flight at most (published, not yet delivered) */
  window: number
}

/**
 * Pushes `count` `tunnel.changed` events over one real, authenticated loopback link between two
 * buses in this process, at most `window` in flight, and measures events/s and the CPU per event.
 * Both ends share the process, so the CPU figure covers sender and receiver together. A warm-up of
 * 2,000 events comes first and is not counted.
 */
export async function benchClusterBusEvents(options: { count: number; window?: number }): Promise<ClusterBusEventBench> {
  const { count } = options
  const window = options.window ?? 1000
  if (!Number.isInteger(count) || count < 1 || count > 10_000_000) throw new RangeError(`count must be 1..10000000, not ${count}`)
  if (!Number.isInteger(window) || window < 1 || window > 9000) throw new RangeError(`window must be 1..9000, not ${window}`)

  const secret = randomBytes(32).toString('base64url')
  const log = silentLogger()
  const bus = (nodeId: string): ClusterBus => {
    const keys = new KeyRing({ graceMs: 60_000 })
    keys.adopt(secret)
    return new ClusterBus(
      {
        nodeId,
        listen: { host: '127.0.0.1', port: 0 },
        authTimeoutMs: 10_000,
        maxFrameBytes: 1024 * 1024,
        maxPendingHandshakes: 16,
        maxOutboxPerPeer: 10_000,
        pingIntervalMs: 5_000,
        pingTimeoutMs: 15_000,
        redial: { initialMs: 50, maxMs: 1000 },
      },
      { keys, stats: new ClusterAuthStats(), log },
    )
  }
  const a = bus('bench-a')
  const b = bus('bench-b')
  try {
    const addrA = await a.listen()
    const addrB = await b.listen()
    const up = new Promise<void>((resolve) => b.once('link-up', () => resolve()))
    a.setPeers([{ id: 'bench-b', address: `${addrB.host}:${addrB.port}` }])
    b.setPeers([{ id: 'bench-a', address: `${addrA.host}:${addrA.port}` }])
    await up

    let delivered = 0
    let wake: (() => void) | undefined
    b.subscribe('tunnel.changed', () => {
      delivered++
      wake?.()
    })
    const run = async (n: number): Promise<void> => {
      const target = delivered + n
      let published = 0
      while (delivered < target) {
        const inFlight = published - (delivered - (target - n))
        const room = Math.min(window - inFlight, n - published)
        for (let i = 0; i < room; i++, published++) a.publish('tunnel.changed', { tunnelId: `t${(published % 9000) + 1000}-bench-tunnel`, change: 'deleted' })
        await new Promise<void>((resolve) => (wake = resolve))
        wake = undefined
      }
    }

    await run(Math.min(2000, count))
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    await run(count)
    const wallMs = performance.now() - t0
    const cpu = process.cpuUsage(cpu0)
    return {
      eventsPerSec: Math.round((count / wallMs) * 1000),
      cpuUsPerEvent: Math.round(((cpu.user + cpu.system) / count) * 100) / 100,
      count,
      window,
    }
  } finally {
    await Promise.all([a.close(), b.close()])
  }
}

export interface FrameSealBench {
  payloadBytes: number
  /** HMAC-SHA256 and framing of one frame on the sending side */
  sealNsPerFrame: number
  /** the check on the receiving side */
  openNsPerFrame: number
}

/**
 * Seals and opens `count` frames of a typical bus event (a `tunnel.changed` payload, ~110 bytes) and
 * of `extraSizes` bytes, in a tight loop: the cost the MACs add per frame, without sockets.
 */
export function benchFrameSealing(options: { count: number; sizes?: number[] }): FrameSealBench[] {
  const { count } = options
  if (!Number.isInteger(count) || count < 1 || count > 10_000_000) throw new RangeError(`count must be 1..10000000, not ${count}`)
  const format = busFrameFormat(1024 * 1024)
  const typical = encodeEventPayload(format, { incarnation: 'a1b2c3d4e5f6', seq: 123456, topic: 'tunnel.changed', data: { tunnelId: 't1234-bench-tunnel', change: 'deleted' } })
  const payloads = [typical, ...(options.sizes ?? []).map((n) => Buffer.alloc(n, 0x61))]
  return payloads.map((payload) => {
    const key = createSecretKey(randomBytes(32))
    const sealer = new FrameSealer(format, key)
    const opener = new FrameOpener(key)
    // In batches of 1,000, so that neither loop keeps more than a batch of frames alive.
    const batch = new Array<Buffer>(1000)
    let sealNs = 0n
    let openNs = 0n
    let done = -Math.min(count, 10_000) // the first rounds warm up and are not counted
    while (done < count) {
      const n = Math.min(batch.length, count - done)
      let t0 = process.hrtime.bigint()
      for (let i = 0; i < n; i++) batch[i] = sealer.seal(FRAME_EVENT, payload)
      const sealed = process.hrtime.bigint() - t0
      t0 = process.hrtime.bigint()
      for (let i = 0; i < n; i++) opener.open({ type: FRAME_EVENT, payload: batch[i]!.subarray(5) })
      const opened = process.hrtime.bigint() - t0
      if (done >= 0) {
        sealNs += sealed
        openNs += opened
      }
      done += n
    }
    return { payloadBytes: payload.length, sealNsPerFrame: Math.round(Number(sealNs) / count), openNsPerFrame: Math.round(Number(openNs) / count) }
  })
}

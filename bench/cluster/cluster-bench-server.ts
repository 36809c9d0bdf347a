/**
 * Worker-thread half of benchClusterHandshakes: the accepting side of the handshake, alone on its
 * thread so its CPU time can be read apart from the clients'. Not part of the product.
 */
import { readFileSync } from 'node:fs'
import { createServer, type Socket } from 'node:net'
import { parentPort, workerData } from 'node:worker_threads'
import { performance } from 'node:perf_hooks'
import { AuthStats } from '../../src/cluster/auth-stats.ts'
import { NonceRegistry } from '../../src/cluster/auth/nonce-registry.ts'
import { acceptHandshake } from '../../src/cluster/auth/server-handshake.ts'
import { KeyRing } from '../../src/cluster/key-ring.ts'

const { secret } = workerData as { secret: string }
const keys = new KeyRing({ graceMs: 60_000 })
keys.adopt(secret)
let stats = new AuthStats()
const nonces = new NonceRegistry()

const server = createServer({ noDelay: true }, (socket: Socket) => {
  socket.on('error', () => {})
  acceptHandshake(socket, { nodeId: 'bench-server', keys, nonces, timeoutMs: 10_000, stats }).then(
    () => {
      // The bench measures the handshake only: end the link once OK is out.
      socket.resume()
      socket.end()
    },
    () => {},
  )
})

/** CPU time of this thread in ms: /proc/thread-self/stat (Linux, 10 ms ticks), else event-loop active time. */
function threadCpuMs(): { ms: number; source: 'thread' | 'event-loop' } {
  try {
    const stat = readFileSync('/proc/thread-self/stat', 'latin1')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    // fields[11] and [12] are utime and stime (fields 14 and 15 of proc(5)), in clock ticks of 10 ms.
    return { ms: (Number(fields[11]) + Number(fields[12])) * 10, source: 'thread' }
  } catch {
    return { ms: performance.eventLoopUtilization().active, source: 'event-loop' }
  }
}

let startCpu = threadCpuMs()
parentPort!.on('message', (m: string) => {
  if (m === 'start') {
    stats = new AuthStats()
    startCpu = threadCpuMs()
    parentPort!.postMessage({ type: 'started' })
  } else if (m === 'stop') {
    const end = threadCpuMs()
    parentPort!.postMessage({ type: 'stopped', cpuMs: end.ms - startCpu.ms, cpuSource: end.source, total: stats.total() })
  } else if (m === 'close') {
    server.close(() => parentPort!.close())
  }
})
server.listen(0, '127.0.0.1', () => {
  const a = server.address() as { port: number }
  parentPort!.postMessage({ type: 'ready', port: a.port })
})

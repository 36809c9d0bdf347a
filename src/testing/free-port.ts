import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'

/** Ports below the kernel's ephemeral range: no outgoing connection takes one as its source port. */
function belowEphemeralRange(): { low: number; high: number } {
  let first = 32768
  try {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number)
    if (low !== undefined && Number.isInteger(low) && low > 12000) first = low
  } catch {
    // not Linux: keep the usual default
  }
  return { low: 10000, high: first - 1 }
}

function tryListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer()
    s.once('error', () => resolve(false))
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)))
  })
}

/**
 * A loopback TCP port free a moment ago, for a process that must be started (and restarted) on a
 * port known in advance. It is drawn below the ephemeral range: a port the kernel hands out (port
 * 0) is just as likely to be taken next as the source port of any outgoing connection, and tests
 * make thousands of those while a replica is down between its kill and its restart (seen in CI:
 * EADDRINUSE at a restart). Another test picking the same port at random is still possible, only
 * unlikely (one in ~20,000 per pair).
 */
export async function freePort(): Promise<number> {
  const { low, high } = belowEphemeralRange()
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low + 1))
    if (await tryListen(port)) return port
  }
  throw new Error(`no free port found between ${low} and ${high} in 50 attempts`)
}

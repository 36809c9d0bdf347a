import { createServer } from 'node:net'

/**
 * A loopback TCP port free a moment ago, for a process that must be started (and restarted) on a
 * port known in advance. Another process could take it in between; tests and benchmarks accept that.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number }
      s.close(() => resolve(port))
    })
  })
}

import { connect, createServer, type Socket } from 'node:net'

export interface TcpForwarder {
  /** https://127.0.0.1:<port>: TLS passes through to the target untouched */
  readonly url: string
  readonly port: number
  /** ends every forwarded connection and refuses new ones (a server gone away) until resume() */
  pause(): void
  resume(): void
  /** stops the bytes of every forwarded connection without closing any (a peer gone silent) */
  freeze(): void
  /** ends every forwarded connection and stops listening; idempotent */
  close(): Promise<void>
}

/** A TCP forwarder to a loopback port, as a layer-4 balancer with one backend would be. */
export async function startTcpForwarder(targetPort: number): Promise<TcpForwarder> {
  const sockets = new Set<Socket>()
  let paused = false
  const server = createServer((inbound) => {
    if (paused) {
      inbound.destroy()
      return
    }
    const outbound = connect(targetPort, '127.0.0.1')
    for (const s of [inbound, outbound]) {
      sockets.add(s)
      s.once('close', () => sockets.delete(s))
      s.on('error', () => {})
    }
    inbound.pipe(outbound).pipe(inbound)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as { port: number }).port
  let closed: Promise<void> | undefined
  return {
    url: `https://127.0.0.1:${port}`,
    port,
    pause() {
      paused = true
      for (const s of sockets) s.destroy()
    },
    resume() {
      paused = false
    },
    freeze() {
      for (const s of sockets) {
        s.unpipe()
        s.pause()
      }
    },
    close() {
      closed ??= new Promise<void>((r) => {
        for (const s of sockets) s.destroy()
        server.close(() => r())
      })
      return closed
    },
  }
}

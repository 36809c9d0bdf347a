import { createServer, type Server, type Socket } from 'node:net'
import { IngressConnection, type IngressConnectionDeps } from './ingress-connection.ts'

/**
 * The ingress listener: plain TCP, one IngressConnection per client connection. It binds a private
 * address by default: the application link URL is for linked cloud products, not the internet.
 */
export class IngressServer {
  #server: Server
  /** each connection with its socket: the drain tells a connection never used from an idle one */
  #connections = new Map<IngressConnection, Socket>()
  #deps: IngressConnectionDeps

  constructor(deps: IngressConnectionDeps) {
    this.#deps = deps
    this.#server = createServer({ noDelay: true, pauseOnConnect: false, allowHalfOpen: true }, (socket: Socket) => this.#accept(socket))
  }

  // allowHalfOpen: a caller that half-closes after its requests is still owed their answers;
  // IngressConnection ends its side once they are out.
  #accept(socket: Socket): void {
    const conn = new IngressConnection(socket, this.#deps)
    this.#connections.set(conn, socket)
    socket.once('close', () => this.#connections.delete(conn))
  }

  /**
   * A caller connection another replica forwarded (already authenticated over the cluster
   * listener): served like one accepted here, with the caller's address from the forward header
   * and no forwarding of its own, so a connection is forwarded at most once.
   */
  acceptForwarded(socket: Socket, forwarded: { clientAddress: string; via?: string }, rest: Buffer): void {
    if (!this.#server.listening) {
      socket.destroy()
      return
    }
    // Given back to the socket before the connection takes its reads: they start with what is queued.
    if (rest.length > 0) socket.unshift(rest)
    const conn = new IngressConnection(socket, { ...this.#deps, forwarder: undefined, forwardedFor: forwarded.clientAddress, forwardedVia: forwarded.via })
    this.#connections.set(conn, socket)
    socket.once('close', () => this.#connections.delete(conn))
    socket.resume()
  }

  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject)
      this.#server.listen({ host, port }, () => {
        this.#server.removeListener('error', reject)
        const addr = this.#server.address()
        if (addr === null || typeof addr === 'string') reject(new Error('ingress has no address'))
        else resolve({ host: addr.address, port: addr.port })
      })
    })
  }

  /** True while the listener accepts connections (readiness). */
  get listening(): boolean {
    return this.#server.listening
  }

  get connectionCount(): number {
    return this.#connections.size
  }

  /**
   * Stops accepting, closes idle connections at once and busy ones when they finish or when
   * graceMs runs out.
   */
  async close(graceMs = 5000): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()))
    const deadline = Date.now() + graceMs
    while (this.#connections.size > 0 && Date.now() < deadline) {
      // A connection accepted just before the listener closed has its first request on the way:
      // closing it now would fail a caller who did everything right. It is closed once idle after
      // an exchange, or when the grace runs out.
      for (const [c, socket] of this.#connections) if (c.idle && socket.bytesRead > 0) c.destroy()
      if (this.#connections.size === 0) break
      await new Promise((r) => setTimeout(r, 50))
    }
    for (const c of this.#connections.keys()) c.destroy()
    await closed
  }
}

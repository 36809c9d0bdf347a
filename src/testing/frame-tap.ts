import { connect, createServer, type Socket } from 'node:net'
import { AUTH_FRAME_FORMAT } from '../cluster/auth/auth-messages.ts'
import { FrameDecoder, encodeFrame, type Frame, type FrameFormat } from '../cluster/wire/frame-decoder.ts'

/**
 * A man in the middle on the cluster bus, for tests: a TCP forwarder (as tcp-forwarder.ts) that
 * knows the cluster framing. It lets the handshake through untouched (CHALLENGE and OK from the
 * accepting node, PROOF from the dialling one), then cuts what follows into bus frames, records
 * them, forwards each whole, and on request alters one, injects bytes, or sends a recorded frame
 * wherever it likes. It knows no key: it does what anyone on the path could.
 */
export type TapDirection = 'to-server' | 'to-client'

export interface TappedConnection {
  /** true once both handshake directions are through and bus frames flow */
  readonly busUp: boolean
  readonly closed: boolean
  /** bus frames forwarded so far per direction, as the sender wrote them (whole wire bytes) */
  readonly frames: Record<TapDirection, Array<{ type: number; wire: Buffer }>>
  /** writes raw bytes towards one node as if the other had sent them */
  inject(direction: TapDirection, bytes: Buffer): void
  /** the next bus frame of `type` going `direction` is replaced by what `change` returns (wire bytes) */
  alterNext(direction: TapDirection, type: number, change: (wire: Buffer) => Buffer): void
}

export interface FrameTap {
  readonly port: number
  readonly address: string
  /** where connections are forwarded; set before the first one arrives */
  setTarget(port: number): void
  /** every connection so far, oldest first */
  readonly connections: readonly TappedConnection[]
  close(): Promise<void>
}

// The tap never refuses a length: judging frames is the nodes' business.
const BUS_WIRE: FrameFormat = { lengthBytes: 4, maxPayloadBytes: 0xffffffff }

export async function startFrameTap(): Promise<FrameTap> {
  const sockets = new Set<Socket>()
  const connections: TappedConnection[] = []
  let target: number | undefined
  const server = createServer((inbound) => {
    const outbound = connect(target!, '127.0.0.1')
    for (const s of [inbound, outbound]) {
      sockets.add(s)
      s.once('close', () => sockets.delete(s))
      s.on('error', () => {})
    }
    const frames: TappedConnection['frames'] = { 'to-server': [], 'to-client': [] }
    const alter: Partial<Record<TapDirection, { type: number; change: (wire: Buffer) => Buffer }>> = {}
    const up = { 'to-server': false, 'to-client': false }
    const peerOf = { 'to-server': outbound, 'to-client': inbound }
    let closed = false
    const end = (): void => {
      closed = true
      inbound.destroy()
      outbound.destroy()
    }
    inbound.once('close', end)
    outbound.once('close', end)
    const pump = (from: Socket, dir: TapDirection, handshakeFrames: number): void => {
      const to = peerOf[dir]
      const auth = new FrameDecoder(AUTH_FRAME_FORMAT)
      let bus: FrameDecoder | undefined
      let left = handshakeFrames
      from.on('data', (chunk: Buffer) => {
        try {
          if (bus === undefined) {
            auth.push(chunk)
            for (let f: Frame | undefined; left > 0 && (f = auth.next()) !== undefined; left--) to.write(encodeFrame(AUTH_FRAME_FORMAT, f.type, f.payload))
            if (left > 0) return
            bus = new FrameDecoder(BUS_WIRE)
            up[dir] = true
            chunk = auth.takeRemainder()
          }
          bus.push(chunk)
          for (let f = bus.next(); f !== undefined; f = bus.next()) {
            let wire = encodeFrame(BUS_WIRE, f.type, Buffer.from(f.payload))
            frames[dir].push({ type: f.type, wire })
            const a = alter[dir]
            if (a !== undefined && a.type === f.type) {
              delete alter[dir]
              wire = a.change(Buffer.from(wire))
            }
            to.write(wire)
          }
        } catch {
          end()
        }
      })
    }
    pump(inbound, 'to-server', 1)
    pump(outbound, 'to-client', 2)
    connections.push({
      get busUp() {
        return up['to-server'] && up['to-client'] && !closed
      },
      get closed() {
        return closed
      },
      frames,
      inject(dir, bytes) {
        if (!closed) peerOf[dir].write(bytes)
      },
      alterNext(dir, type, change) {
        alter[dir] = { type, change }
      },
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as { port: number }).port
  let closing: Promise<void> | undefined
  return {
    port,
    address: `127.0.0.1:${port}`,
    setTarget(p) {
      target = p
    },
    connections,
    close() {
      closing ??= new Promise<void>((r) => {
        for (const s of sockets) s.destroy()
        server.close(() => r())
      })
      return closing
    },
  }
}

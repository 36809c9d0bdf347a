import type { Socket } from 'node:net'
import { isTunnelError } from '../../errors/index.ts'
import type { LinkKeys } from '../../cluster/index.ts'
import type { Logger } from '../../observability/index.ts'
import { FORWARD_ACCEPTED, FORWARD_HEADER_MAC_BYTES, MAX_FORWARD_HEADER_BYTES, decodeForwardHeader, type ForwardHeader } from './forward-header.ts'

/**
 * The receiving end: a peer proved the cluster key with FLAG_FORWARD; read its forward header
 * (within timeoutMs) and hand the socket, with whatever followed the header, to the ingress.
 */
export function acceptForwardedConnection(
  socket: Socket,
  peer: { peerId: string; leftover: Buffer; linkKeys: LinkKeys },
  deps: { ingress: { readonly listening: boolean; acceptForwarded(socket: Socket, header: ForwardHeader & { via: string }, rest: Buffer): void }; log: Logger; timeoutMs: number },
): void {
  let buf = peer.leftover
  const timer = setTimeout(() => finish(new Error('no forward header in time')), deps.timeoutMs)
  const onData = (chunk: Buffer): void => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk])
    tryDecode()
  }
  const onClose = (): void => finish(new Error('closed before its forward header'))
  const finish = (err: Error | undefined, done?: { header: ForwardHeader; rest: Buffer }): void => {
    clearTimeout(timer)
    socket.off('data', onData)
    socket.off('close', onClose)
    if (err !== undefined || done === undefined) {
      deps.log.info({ peerId: peer.peerId, reason: err?.message, code: isTunnelError(err) ? err.code : undefined }, 'refused a forwarded connection')
      socket.destroy()
      return
    }
    if (!deps.ingress.listening) {
      // Draining: closed without the accept byte, so the forwarding replica tries elsewhere.
      socket.destroy()
      return
    }
    socket.pause()
    socket.write(FORWARD_ACCEPTED)
    deps.ingress.acceptForwarded(socket, { ...done.header, via: peer.peerId }, done.rest)
  }
  const tryDecode = (): void => {
    let done: ReturnType<typeof decodeForwardHeader>
    try {
      done = decodeForwardHeader(buf, peer.linkKeys.receive)
    } catch (err) {
      finish(err as Error)
      return
    }
    if (done !== undefined) finish(undefined, done)
    else if (buf.length > 2 + MAX_FORWARD_HEADER_BYTES + FORWARD_HEADER_MAC_BYTES) finish(new Error('forward header too long'))
  }
  socket.on('error', () => {})
  socket.on('close', onClose)
  socket.on('data', onData)
  if (buf.length > 0) tryDecode()
  if (!socket.destroyed && socket.listenerCount('data') > 0) socket.resume()
}

import { Socket } from 'node:net'

/**
 * Node reads into a caller's buffer (`onread`) only on a socket it opens itself: `net.connect()` and
 * `tls.connect()` take the option, a server's accepted sockets do not. Underneath, both kinds are
 * the same stream handle, and Node's read path (`onStreamRead`) asks only two symbol-keyed fields
 * of the socket whether a buffer of the caller's is in use. So an accepted socket is switched over
 * the way the constructor does it for `onread`: those two fields are set and the handle is told to
 * read into the buffer (`useUserBuffer`, a method of every stream handle, TLS included).
 *
 * The fields are Node's, not a documented API, so they are looked up by their names on a socket
 * made with `onread`, and nothing is switched when they, or the handle's method, are not found:
 * the caller then reads 'data' events as before (decision 57).
 */
interface UserBufferFields {
  readonly buffer: symbol
  readonly callback: symbol
}

const fields: UserBufferFields | undefined = (() => {
  // Node takes `onread` in the constructor too (that is what connect() passes it to); the types know it on connect() only.
  const probe = new Socket({ onread: { buffer: Buffer.alloc(1), callback: () => true } } as ConstructorParameters<typeof Socket>[0])
  let buffer: symbol | undefined
  let callback: symbol | undefined
  for (const s of Object.getOwnPropertySymbols(probe)) {
    if (s.description === 'kBuffer') buffer = s
    else if (s.description === 'kBufferCb') callback = s
  }
  const found = buffer !== undefined && callback !== undefined && Buffer.isBuffer((probe as unknown as Record<symbol, unknown>)[buffer])
  probe.destroy()
  return found ? { buffer: buffer!, callback: callback! } : undefined
})()

interface StreamHandle {
  useUserBuffer?: (buffer: Uint8Array) => void
}

/** Whether this Node lets readIntoBuffer() switch an accepted socket over. */
export const acceptedSocketsReadIntoBuffer = fields !== undefined

/**
 * From now on every read of `socket` lands in `buffer` and is handed to `onRead` as a view of it,
 * valid only until `onRead` returns; nothing is allocated per read. What the socket had already
 * read and not yet handed out (or was given back with unshift()) comes first, as its own buffers;
 * anything unshifted later is never read. Pausing and resuming the socket
 * work as on a socket opened with `onread`; 'end', 'error' and 'close' are emitted as before.
 *
 * Returns false, having changed nothing, where this Node does not allow it (see above) or the
 * socket has no open handle or already reads into a buffer; the caller then reads 'data' events.
 */
export function readIntoBuffer(socket: Socket, buffer: Buffer, onRead: (chunk: Buffer) => void): boolean {
  const handle = (socket as unknown as { _handle: StreamHandle | null })._handle
  const own = socket as unknown as Record<symbol, unknown>
  if (fields === undefined || handle === null || typeof handle.useUserBuffer !== 'function' || own[fields.buffer] !== null) return false
  if (socket.destroyed || !socket.readable) return false
  // Bytes already read into the stream's queue (before this call) would otherwise never come out.
  for (let chunk: Buffer | null = socket.read(); chunk !== null; chunk = socket.read()) onRead(chunk)
  own[fields.buffer] = buffer
  own[fields.callback] = (n: number): boolean => {
    onRead(buffer.subarray(0, n))
    return true
  }
  handle.useUserBuffer(buffer)
  socket.resume()
  return true
}

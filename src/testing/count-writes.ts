import type { Socket } from 'node:net'

/**
 * Counts a socket's write calls from here on, by kind: the writes Node hands to the kernel, one
 * system call each (`writev` for what a cork gathered). The socket writes as before.
 */
export function countWrites(socket: Socket): { single: number; vectored: number } {
  const counts = { single: 0, vectored: 0 }
  const s = socket as unknown as { _write: (...a: unknown[]) => void; _writev: (...a: unknown[]) => void }
  const write = s._write.bind(socket)
  const writev = s._writev.bind(socket)
  s._write = (...a) => {
    counts.single++
    write(...a)
  }
  s._writev = (...a) => {
    counts.vectored++
    writev(...a)
  }
  return counts
}

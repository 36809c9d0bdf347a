import { connect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import type { ListenAddress } from '../../config/listen-address.ts'

/** A response head is a status line and fields; past this much it is not worth reading on. */
const MAX_HEAD_BYTES = 16 * 1024

/** What the upstream port did with one `GET /`. */
export type UpstreamAnswer =
  | { kind: 'http'; status: number; location: string | undefined }
  | { kind: 'tls' }
  | { kind: 'not-http'; firstBytes: string }
  | { kind: 'closed' }
  | { kind: 'unreachable'; code: string }
  | { kind: 'timeout'; connected: boolean }

/**
 * Sends `GET /` with the given Host to the upstream over plain TCP, as the agent's relay would, and
 * reads only the answer's head; nothing is followed. A port that closes without a byte gets a TLS
 * handshake next: a TLS server says nothing to plain HTTP, so that is how an HTTPS port shows.
 */
export async function askUpstream(target: ListenAddress, hostHeader: string, timeoutMs: number): Promise<UpstreamAnswer> {
  const raw = await exchange(target, `GET / HTTP/1.1\r\nHost: ${hostHeader}\r\nUser-Agent: apptunnel-doctor\r\nAccept: */*\r\nConnection: close\r\n\r\n`, timeoutMs)
  if (raw.kind !== 'bytes') return raw
  const bytes = raw.bytes
  if (bytes.length === 0) return (await speaksTls(target, timeoutMs)) ? { kind: 'tls' } : { kind: 'closed' }
  // A TLS record starts with its content type (20-23) and the major version 3.
  if (bytes[0]! >= 0x14 && bytes[0]! <= 0x17 && bytes[1] === 0x03) return { kind: 'tls' }
  const head = bytes.toString('latin1')
  const status = /^HTTP\/1\.[01] (\d{3})[ \r]/.exec(head)
  if (status === null) return { kind: 'not-http', firstBytes: printable(bytes.subarray(0, 24)) }
  const end = head.indexOf('\r\n\r\n')
  const fields = (end === -1 ? head : head.slice(0, end)).split('\r\n').slice(1)
  const location = fields.find((f) => /^location:/i.test(f))?.replace(/^[^:]*:\s*/, '').trim()
  return { kind: 'http', status: Number(status[1]), location: location === '' ? undefined : location }
}

type Exchanged = { kind: 'bytes'; bytes: Buffer } | { kind: 'unreachable'; code: string } | { kind: 'timeout'; connected: boolean }

function exchange(target: ListenAddress, request: string, timeoutMs: number): Promise<Exchanged> {
  return new Promise((resolve) => {
    let connected = false
    let received = Buffer.alloc(0)
    const socket: Socket = connect({ host: target.host, port: target.port })
    const done = (result: Exchanged): void => {
      clearTimeout(timer)
      socket.removeAllListeners()
      socket.on('error', () => {})
      socket.destroy()
      resolve(result)
    }
    const timer = setTimeout(() => done(received.length > 0 ? { kind: 'bytes', bytes: received } : { kind: 'timeout', connected }), timeoutMs)
    socket.once('connect', () => {
      connected = true
      socket.write(request)
    })
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk])
      if (received.includes('\r\n\r\n') || received.length >= MAX_HEAD_BYTES || received[0] === 0x15 || received[0] === 0x16) done({ kind: 'bytes', bytes: received })
    })
    socket.once('close', () => done({ kind: 'bytes', bytes: received }))
    socket.once('error', (err: NodeJS.ErrnoException) => {
      // A reset after the port accepted is an answer of sorts (it hung up), not unreachability.
      done(connected ? { kind: 'bytes', bytes: received } : { kind: 'unreachable', code: err.code ?? err.message })
    })
  })
}

function speaksTls(target: ListenAddress, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    // Only "does a TLS server answer here" matters: whose certificate it is, is not the question.
    const socket = tlsConnect({ host: target.host, port: target.port, rejectUnauthorized: false, ...(/^[\d.]+$|:/.test(target.host) ? {} : { servername: target.host }) })
    const done = (yes: boolean): void => {
      clearTimeout(timer)
      socket.removeAllListeners()
      socket.on('error', () => {})
      socket.destroy()
      resolve(yes)
    }
    const timer = setTimeout(() => done(false), timeoutMs)
    socket.once('secureConnect', () => done(true))
    socket.once('error', () => done(false))
    socket.once('close', () => done(false))
  })
}

function printable(bytes: Buffer): string {
  return [...bytes].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`)).join('')
}

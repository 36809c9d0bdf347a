/**
 * The processes of `--ceilings` (forked by bench/lib/ceilings-run.ts, jobs over IPC), one role
 * per process so that each one's CPU is read from /proc on its own:
 *
 *   source  listens (plain TCP, and TLS when given a certificate); on `GET /bytes?n=N` answers a
 *           minimal HTTP head and N bytes in 64 KiB writes, so the tunnel and ssh -R can front it
 *           exactly as they front an app
 *   relay   listens, and pipes every connection both ways to a target, TLS on either side or none
 *   sink    sends the GET through a given port and counts the body, recording the size of every
 *           chunk its 'data' handler sees; the body is checked by length only, to keep the sink's
 *           own cost small (the main bench verifies every byte of the same kind of transfer)
 *
 * Every TLS side uses the tunnel's own policy (src/transport/tls-policy.ts), so these connections
 * negotiate what an agent's session does. Exits when the parent disconnects.
 */
import { once } from 'node:events'
import { connect as netConnect, createServer as createNetServer, type Server, type Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import { connect as tlsConnect, createServer as createTlsServer, type TLSSocket } from 'node:tls'
import { tlsPolicy } from '../src/transport/tls-policy.ts'
import { answerJobs } from './lib/children.ts'
import { writePattern } from './lib/pattern.ts'
import { ReadSizeCounter, type ReadSizes } from './lib/ceilings.ts'

export interface Certificate {
  cert: string
  key: string
}

export type CeilingJob =
  | { kind: 'source'; certificate?: Certificate }
  | { kind: 'relay'; target: number; listenTls?: Certificate; connectTls: boolean }
  | { kind: 'sink'; port: number; host: string; tls: boolean; bytes: number; timeoutMs: number }

export interface SinkResult {
  bytes: number
  seconds: number
  reads: ReadSizes
  /** what the TLS connection negotiated, when the sink spoke TLS */
  protocol?: string
  cipher?: string
}

const servers: Server[] = []
const sockets = new Set<Socket>()

function track(s: Socket): Socket {
  sockets.add(s)
  s.once('close', () => sockets.delete(s))
  return s
}

function listen(server: Server): Promise<number> {
  servers.push(server)
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject)
      resolve((server.address() as { port: number }).port)
    })
  })
}

const HEAD_LIMIT = 8 * 1024

/** Reads one request head, then streams the body it asks for; a head it cannot read closes the connection. */
function serveBytes(socket: Socket): void {
  track(socket).setNoDelay(true)
  socket.on('error', () => socket.destroy())
  let head = ''
  const onData = (chunk: Buffer): void => {
    head += chunk.toString('latin1')
    const end = head.indexOf('\r\n\r\n')
    if (end < 0) {
      if (head.length > HEAD_LIMIT) socket.destroy()
      return
    }
    socket.off('data', onData)
    const m = /^GET \/bytes\?n=(\d+) /.exec(head)
    if (m === null) {
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n')
      return
    }
    const bytes = Number(m[1])
    socket.write(`HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${bytes}\r\n\r\n`)
    writePattern(socket, bytes)
  }
  socket.on('data', onData)
}

async function startSource(job: Extract<CeilingJob, { kind: 'source' }>): Promise<{ port: number; tlsPort?: number }> {
  const port = await listen(createNetServer({ noDelay: true }, serveBytes))
  if (job.certificate === undefined) return { port }
  const tlsPort = await listen(createTlsServer({ ...job.certificate, ...tlsPolicy }, serveBytes))
  return { port, tlsPort }
}

/** A connection in, the same bytes out to the target and back: `pipe` both ways, nothing else. */
async function startRelay(job: Extract<CeilingJob, { kind: 'relay' }>): Promise<{ port: number }> {
  const onConnection = (inbound: Socket): void => {
    track(inbound).setNoDelay(true)
    const outbound = track(
      job.connectTls
        ? tlsConnect({ host: '127.0.0.1', port: job.target, ...tlsPolicy, rejectUnauthorized: false })
        : netConnect({ host: '127.0.0.1', port: job.target, noDelay: true }),
    )
    outbound.setNoDelay(true)
    const close = (): void => {
      inbound.destroy()
      outbound.destroy()
    }
    inbound.on('error', close).on('close', close)
    outbound.on('error', close).on('close', close)
    inbound.pipe(outbound)
    outbound.pipe(inbound)
  }
  const server = job.listenTls === undefined ? createNetServer({ noDelay: true }, onConnection) : createTlsServer({ ...job.listenTls, ...tlsPolicy }, onConnection)
  return { port: await listen(server) }
}

/** One GET through the port; resolves once the whole body arrived, with its time and the sizes of its reads. */
async function runSink(job: Extract<CeilingJob, { kind: 'sink' }>): Promise<SinkResult> {
  const started = performance.now()
  const socket = track(
    job.tls
      ? tlsConnect({ host: '127.0.0.1', port: job.port, ...tlsPolicy, rejectUnauthorized: false })
      : netConnect({ host: '127.0.0.1', port: job.port, noDelay: true }),
  )
  const reads = new ReadSizeCounter()
  let body = 0
  try {
    await once(socket, job.tls ? 'secureConnect' : 'connect')
    socket.write(`GET /bytes?n=${job.bytes} HTTP/1.1\r\nHost: ${job.host}\r\n\r\n`)
    const ended = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`sink: ${body} of ${job.bytes} bytes after ${job.timeoutMs} ms`)), job.timeoutMs)
      const fail = (err: Error): void => {
        clearTimeout(timer)
        reject(err)
      }
      let head: Buffer | undefined = Buffer.alloc(0)
      socket.on('error', fail)
      socket.on('close', () => fail(new Error(`sink: connection closed after ${body} of ${job.bytes} bytes`)))
      socket.on('data', (chunk: Buffer) => {
        if (head !== undefined) {
          head = Buffer.concat([head, chunk])
          const end = head.indexOf('\r\n\r\n')
          if (end < 0) {
            if (head.length > HEAD_LIMIT) fail(new Error('sink: no response head'))
            return
          }
          const status = head.subarray(0, head.indexOf('\r\n')).toString('latin1')
          if (!/^HTTP\/1\.1 200 /.test(status)) fail(new Error(`sink: ${status}`))
          body += head.length - end - 4
          head = undefined
          return
        }
        reads.record(chunk.length)
        body += chunk.length
        if (body >= job.bytes) {
          clearTimeout(timer)
          if (body > job.bytes) reject(new Error(`sink: ${body} bytes, expected ${job.bytes}`))
          else resolve(performance.now())
        }
      })
    })
    const tls = job.tls ? (socket as TLSSocket) : undefined
    return {
      bytes: body,
      seconds: (ended - started) / 1000,
      reads: reads.summary(),
      ...(tls === undefined ? {} : { protocol: String(tls.getProtocol()), cipher: tls.getCipher().standardName }),
    }
  } finally {
    socket.removeAllListeners('close')
    socket.destroy()
  }
}

function run(job: CeilingJob): Promise<unknown> {
  switch (job.kind) {
    case 'source':
      return startSource(job)
    case 'relay':
      return startRelay(job)
    case 'sink':
      return runSink(job)
  }
}

answerJobs(run)
process.on('disconnect', () => {
  for (const s of sockets) s.destroy()
  for (const s of servers) s.close()
  process.exit(0)
})

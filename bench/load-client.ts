/**
 * The load generator, in its own process (forked by run.ts, jobs over IPC). It speaks HTTP/1.1 over
 * raw sockets so its own cost per request stays a few microseconds: a request is one write, a
 * response is found by its Content-Length. Every loop is bounded by a deadline and, for bulk, by
 * the byte count.
 */
import { connect, type Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import WebSocket from 'ws'
import { answerJobs } from './lib/children.ts'
import { PatternVerifier, writePattern } from './lib/pattern.ts'
import { percentile, sortedCopy } from './lib/stats.ts'

export interface Target {
  port: number
  /** Host header: the tunnel's host, or the upstream's own address for direct runs */
  host: string
}

export type Job =
  | { kind: 'requests'; target: Target; path: string; connections: number; durationMs: number; warmupMs: number; newConnectionEach?: boolean }
  | { kind: 'get'; target: Target; bytes: number; timeoutMs: number }
  | { kind: 'post'; target: Target; bytes: number; timeoutMs: number }
  | { kind: 'ws'; target: Target; durationMs: number; inFlight: number; size: number }

export interface RequestsResult {
  /** responses in the measured window */
  requests: number
  /** responses including the warm-up, to divide CPU time by */
  totalRequests: number
  windowUs: WindowUs
  errors: number
  rps: number
  p50Ms: number
  p99Ms: number
}

/** the measured window on the monotonic clock (µs), to cut CPU profiles of other processes to it */
export type WindowUs = [number, number]

function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n)
}

export interface BulkResult {
  windowUs: WindowUs
  bytes: number
  seconds: number
  MBps: number
}

export interface WsResult {
  messages: number
  messagesPerSec: number
}

function openSocket(target: Target): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port: target.port, noDelay: true })
    s.once('connect', () => {
      s.off('error', reject)
      resolve(s)
    })
    s.once('error', reject)
  })
}

/** Reads keep-alive responses off one socket; calls back once per complete response. */
class ResponseReader {
  #buf: Buffer | undefined
  #need = -1
  readonly #onResponse: (status: number) => void
  #status = 0

  constructor(onResponse: (status: number) => void) {
    this.#onResponse = onResponse
  }

  push(chunk: Buffer): void {
    let buf = this.#buf === undefined ? chunk : Buffer.concat([this.#buf, chunk])
    for (;;) {
      if (this.#need < 0) {
        const end = buf.indexOf('\r\n\r\n')
        if (end < 0) break
        const head = buf.toString('latin1', 0, end)
        this.#status = Number(head.slice(9, 12))
        const m = /\r\ncontent-length:\s*(\d+)/i.exec(head)
        if (m === null) throw new Error(`response without Content-Length: ${head.split('\r\n')[0]}`)
        this.#need = Number(m[1])
        buf = buf.subarray(end + 4)
      }
      if (buf.length < this.#need) break
      buf = buf.subarray(this.#need)
      this.#need = -1
      this.#onResponse(this.#status)
    }
    this.#buf = buf.length > 0 ? buf : undefined
  }
}

async function runRequests(job: Extract<Job, { kind: 'requests' }>): Promise<RequestsResult> {
  const request = Buffer.from(`GET ${job.path} HTTP/1.1\r\nHost: ${job.target.host}\r\nUser-Agent: apptunnel-bench\r\n\r\n`, 'latin1')
  const sockets = await Promise.all(Array.from({ length: job.connections }, () => openSocket(job.target)))
  const latencies: number[] = []
  let errors = 0
  let measuring = false
  let stopping = false
  const warmupEnd = performance.now() + job.warmupMs
  const deadline = warmupEnd + job.durationMs
  let measureStart = 0
  let measureStartUs = 0
  let measured = 0
  let total = 0
  await new Promise<void>((resolve, reject) => {
    let open = sockets.length
    const finishOne = (): void => {
      if (--open === 0) resolve()
    }
    for (const s of sockets) {
      let sentAt = 0
      const send = (): void => {
        sentAt = performance.now()
        s.write(request)
      }
      const reader = new ResponseReader((status) => {
        const now = performance.now()
        total++
        if (!measuring && now >= warmupEnd) {
          measuring = true
          measureStart = now
          measureStartUs = monotonicUs()
        }
        if (measuring && now <= deadline) {
          latencies.push(now - sentAt)
          measured++
          if (status !== 200) errors++
        }
        if (now >= deadline || stopping) {
          finishOne()
          return
        }
        send()
      })
      s.on('data', (c: Buffer) => {
        try {
          reader.push(c)
        } catch (err) {
          stopping = true
          reject(err)
        }
      })
      s.on('error', (err) => {
        stopping = true
        reject(err)
      })
      send()
    }
  })
  const windowUs: WindowUs = [measureStartUs, monotonicUs()]
  for (const s of sockets) s.destroy()
  const seconds = (deadline - measureStart) / 1000
  const sorted = sortedCopy(latencies)
  return { requests: measured, totalRequests: total, windowUs, errors, rps: measured / seconds, p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99) }
}

/**
 * `connections` loops that each open a connection, send one request (`Connection: close`), read
 * the response and close: the cost of accepting and handing out connections, which keep-alive
 * hides. A request's latency includes its connect.
 */
async function runRequestsOnNewConnections(job: Extract<Job, { kind: 'requests' }>): Promise<RequestsResult> {
  const request = Buffer.from(`GET ${job.path} HTTP/1.1\r\nHost: ${job.target.host}\r\nUser-Agent: apptunnel-bench\r\nConnection: close\r\n\r\n`, 'latin1')
  const latencies: number[] = []
  let errors = 0
  const warmupEnd = performance.now() + job.warmupMs
  const deadline = warmupEnd + job.durationMs
  let measureStart = Number.NaN
  let measureStartUs = 0
  let measured = 0
  let total = 0
  const once = (): Promise<number> =>
    new Promise((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port: job.target.port, noDelay: true })
      const reader = new ResponseReader((status) => {
        s.destroy()
        resolve(status)
      })
      s.once('connect', () => s.write(request))
      s.on('data', (c: Buffer) => {
        try {
          reader.push(c)
        } catch (err) {
          s.destroy()
          reject(err as Error)
        }
      })
      s.once('error', reject)
      s.once('close', () => reject(new Error('connection closed before its response')))
    })
  const loop = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const sentAt = performance.now()
      const status = await once()
      const now = performance.now()
      total++
      if (now < warmupEnd || now > deadline) continue
      if (Number.isNaN(measureStart)) {
        measureStart = now
        measureStartUs = monotonicUs()
      }
      latencies.push(now - sentAt)
      measured++
      if (status !== 200) errors++
    }
  }
  await Promise.all(Array.from({ length: job.connections }, loop))
  const windowUs: WindowUs = [measureStartUs, monotonicUs()]
  const seconds = (deadline - measureStart) / 1000
  const sorted = sortedCopy(latencies)
  return { requests: measured, totalRequests: total, windowUs, errors, rps: measured / seconds, p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99) }
}

function readHeadThen(s: Socket, onBody: (chunk: Buffer) => void, onHead: (status: number, length: number) => void): void {
  let head: Buffer | undefined = Buffer.alloc(0)
  s.on('data', (c: Buffer) => {
    if (head === undefined) {
      onBody(c)
      return
    }
    head = Buffer.concat([head, c])
    const end = head.indexOf('\r\n\r\n')
    if (end < 0) return
    const text = head.toString('latin1', 0, end)
    const m = /\r\ncontent-length:\s*(\d+)/i.exec(text)
    onHead(Number(text.slice(9, 12)), m === null ? -1 : Number(m[1]))
    const rest = head.subarray(end + 4)
    head = undefined
    if (rest.length > 0) onBody(rest)
  })
}

/** One transfer on a fresh connection; resolves when the whole verified body arrived. */
async function runBulk(job: Extract<Job, { kind: 'get' | 'post' }>): Promise<BulkResult> {
  const s = await openSocket(job.target)
  const verifier = new PatternVerifier()
  const started = performance.now()
  const startedUs = monotonicUs()
  const done = new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${job.kind} of ${job.bytes} bytes not done in ${job.timeoutMs} ms (${verifier.bytes} received)`)), job.timeoutMs)
    const fail = (err: Error): void => {
      clearTimeout(timer)
      reject(err)
    }
    s.on('error', fail)
    s.on('close', () => fail(new Error(`connection closed after ${verifier.bytes} of ${job.bytes} bytes`)))
    readHeadThen(
      s,
      (chunk) => {
        verifier.update(chunk)
        if (verifier.bytes >= job.bytes) {
          clearTimeout(timer)
          if (verifier.mismatchAt >= 0) reject(new Error(`body differs from the pattern at byte ${verifier.mismatchAt}`))
          else if (verifier.bytes > job.bytes) reject(new Error(`received ${verifier.bytes} bytes, expected ${job.bytes}`))
          else resolve(performance.now())
        }
      },
      (status, length) => {
        if (status !== 200) fail(new Error(`HTTP ${status}`))
        else if (length !== job.bytes) fail(new Error(`Content-Length ${length}, expected ${job.bytes}`))
      },
    )
  })
  if (job.kind === 'get') {
    s.write(`GET /bytes?n=${job.bytes} HTTP/1.1\r\nHost: ${job.target.host}\r\n\r\n`)
  } else {
    s.write(`POST /echo HTTP/1.1\r\nHost: ${job.target.host}\r\nContent-Length: ${job.bytes}\r\n\r\n`)
    writePattern(s, job.bytes)
  }
  try {
    const ended = await done
    const seconds = (ended - started) / 1000
    return { windowUs: [startedUs, monotonicUs()], bytes: job.bytes, seconds, MBps: job.bytes / 1e6 / seconds }
  } finally {
    s.removeAllListeners('close')
    s.destroy()
  }
}

/** Echo round trips on one WebSocket with a fixed window of messages in flight. */
async function runWs(job: Extract<Job, { kind: 'ws' }>): Promise<WsResult> {
  const ws = new WebSocket(`ws://127.0.0.1:${job.target.port}/ws`, { headers: { host: job.target.host }, perMessageDeflate: false })
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
  })
  const payload = Buffer.alloc(job.size, 'w')
  let received = 0
  const started = performance.now()
  const deadline = started + job.durationMs
  let ended = started
  try {
    await new Promise<void>((resolve, reject) => {
      ws.on('error', reject)
      ws.on('close', () => reject(new Error(`WebSocket closed after ${received} messages`)))
      let inFlight = 0
      ws.on('message', (data: Buffer) => {
        if (data.length !== job.size) {
          reject(new Error(`echo of ${data.length} bytes, sent ${job.size}`))
          return
        }
        received++
        inFlight--
        const now = performance.now()
        if (now < deadline) {
          ws.send(payload)
          inFlight++
        } else if (inFlight === 0) {
          ended = now
          resolve()
        }
      })
      for (; inFlight < job.inFlight; inFlight++) ws.send(payload)
    })
  } finally {
    ws.removeAllListeners('close')
    ws.terminate()
  }
  return { messages: received, messagesPerSec: received / ((ended - started) / 1000) }
}

function run(job: Job): Promise<RequestsResult | BulkResult | WsResult> {
  switch (job.kind) {
    case 'requests':
      return job.newConnectionEach === true ? runRequestsOnNewConnections(job) : runRequests(job)
    case 'get':
    case 'post':
      return runBulk(job)
    case 'ws':
      return runWs(job)
  }
}

answerJobs(run)
process.on('disconnect', () => process.exit(0))

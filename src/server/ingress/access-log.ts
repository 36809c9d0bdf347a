import { close, open, writev } from 'node:fs'
import { TunnelError } from '../../errors/index.ts'
import type { Logger } from '../../observability/index.ts'

/**
 * Bytes of lines waiting for the disk before new lines are dropped (and counted) instead: a slow
 * or stalled disk must cost the ingress neither latency nor unbounded memory. About 30 000 lines,
 * a few seconds of a busy ingress.
 */
export const ACCESS_LOG_MAX_BUFFERED_BYTES = 8 * 1024 * 1024
/** Lines are encoded into chunks of this size; a full chunk is written at once. */
const CHUNK_BYTES = 64 * 1024
/**
 * Otherwise lines are written at most this long after they come: at a few thousand requests per
 * second a write per event loop turn would be a system call per request or two.
 */
const FLUSH_DELAY_MS = 20
/** Lines dropped are reported in the process log at most this often. */
const DROP_WARNING_INTERVAL_MS = 60_000

/** One caller request as the access log sees it, from its complete head to the end of its answer. */
export class AccessRecord {
  /** performance.now() when the request head was complete; NaN for a head that never parsed */
  readonly atMs: number
  readonly method: string | null
  /** the request target without its query: the query often carries tokens and personal data */
  readonly path: string | null
  /** request bytes as received: head and body, chunked framing included */
  bytesIn: number
  /** response bytes sent: interim answers, head and body */
  bytesOut = 0
  /** the final status sent (the app's, or the ingress's own) */
  status: number | null = null
  /** the relay session that carried the exchange, when one did */
  session: { readonly sessionId: string; readonly nodeId?: string; readonly peerId?: string } | undefined

  constructor(atMs: number, method: string | null, target: string | null, headBytes: number) {
    this.atMs = atMs
    this.method = method
    // Only origin-form is a path; another form (refused anyway) may carry user:password@host.
    if (target === null || !(target.startsWith('/') || target === '*')) this.path = null
    else {
      const q = target.indexOf('?')
      this.path = q === -1 ? target : target.slice(0, q)
    }
    this.bytesIn = headBytes
  }
}

/** What the ingress connection knows about itself when a line is written. */
export interface AccessLogConnection {
  readonly tunnelId: string | undefined
  /** the caller's address (on a forwarded connection, the one the forwarding replica saw) */
  readonly clientAddress: string
  /** on a connection another replica forwarded: that replica's node id */
  readonly forwardedFrom: string | undefined
}

/** Ids, addresses, methods and codes are plain; anything else is escaped by JSON.stringify. */
const PLAIN = /^[A-Za-z0-9._:%/-]*$/
function q(s: string | null | undefined): string {
  if (s === null || s === undefined) return 'null'
  return PLAIN.test(s) ? `"${s}"` : JSON.stringify(s)
}

/**
 * q() of one field, remembering the last value: a field's value mostly repeats from line to line
 * (the tunnel, the caller's address, the session, the method), and a busy ingress writes a line
 * per request.
 */
class QuotedField {
  #value: string | null | undefined = null
  #quoted = 'null'

  of(s: string | null | undefined): string {
    if (s !== this.#value) {
      this.#value = s
      this.#quoted = q(s)
    }
    return this.#quoted
  }
}

/**
 * A duration in whole microseconds as milliseconds with up to three decimals, as
 * `String(us / 1000)` writes it: built from integers, since formatting a double is the dearest part
 * of a line.
 */
export function millisText(us: number): string {
  const whole = Math.floor(us / 1000)
  const frac = us - whole * 1000
  if (frac === 0) return `${whole}`
  if (frac % 100 === 0) return `${whole}.${frac / 100}`
  if (frac % 10 === 0) return `${whole}.${frac < 100 ? '0' : ''}${frac / 10}`
  return `${whole}.${frac < 10 ? '00' : frac < 100 ? '0' : ''}${frac}`
}

/** The wall-clock time performance.now() counts from; fixed for the process. */
const TIME_ORIGIN_MS = performance.timeOrigin

/**
 * The access log (`--access-log`): one JSON line per caller request, appended to a file (created
 * 0600) or written to standard output (`-`). See docs/decisions.md, entry 44.
 *
 * A line is encoded at once into a 64 KiB chunk (the string dies young); chunks are written with
 * one writev(2) when one fills or FLUSH_DELAY_MS after the first line, one write in flight at a
 * time, so a busy ingress pays a string per request and a system call per 64 KiB or 20 ms. Past
 * ACCESS_LOG_MAX_BUFFERED_BYTES waiting (a slow or stalled disk) lines are dropped and counted,
 * never waited for. `reopen()` (SIGHUP) starts a new file after logrotate moved the old
 * one. Only the fields below are ever written: no query string, no header, no credential.
 */
export class AccessLog {
  readonly #path: string | undefined
  readonly #log: Logger
  readonly #maxBytes: number
  #fd: number
  /** the chunk lines are encoded into, and its bytes used; allocated on the first line after a write */
  #chunk: Buffer | undefined
  #used = 0
  /** filled chunks waiting for the write in flight */
  #full: Buffer[] = []
  /** bytes queued and in flight: the memory the log holds */
  #pendingBytes = 0
  #writing = false
  #timer: NodeJS.Timeout | undefined
  #reopen = false
  #closing: (() => void) | undefined
  #closed = false
  #lines = 0
  #dropped = 0
  #droppedReported = 0
  #lastWarningMs = -Infinity
  /** the ISO time of the last line's millisecond: most lines of a busy second share it */
  #isoMs = NaN
  #iso = ''
  readonly #tunnel = new QuotedField()
  readonly #method = new QuotedField()
  readonly #client = new QuotedField()
  readonly #session = new QuotedField()
  readonly #node = new QuotedField()
  readonly #flush = (): void => {
    this.#timer = undefined
    this.#flushNow()
  }

  private constructor(fd: number, path: string | undefined, deps: { log: Logger; maxBufferedBytes?: number }) {
    this.#fd = fd
    this.#path = path
    this.#log = deps.log
    this.#maxBytes = deps.maxBufferedBytes ?? ACCESS_LOG_MAX_BUFFERED_BYTES
  }

  /** Opens (creates 0600, or appends to) `destination`, or standard output for `-`; fails at once when it cannot. */
  static async open(destination: string, deps: { log: Logger; maxBufferedBytes?: number }): Promise<AccessLog> {
    if (destination === '-') return new AccessLog(1, undefined, deps)
    const fd = await new Promise<number>((resolve, reject) =>
      open(destination, 'a', 0o600, (err, fd) => {
        if (err === null) return resolve(fd)
        const why = err.code === 'ENOENT' ? 'no such directory' : err.code === 'EACCES' ? 'permission denied' : err.code === 'EISDIR' ? 'is a directory' : err.message
        reject(new TunnelError('TUN_ERR_CONFIG_INVALID', `accessLog: cannot open ${destination}: ${why}`))
      }),
    )
    return new AccessLog(fd, destination, deps)
  }

  /** A request whose head is complete (or, with nulls, one refused before its head could be read). */
  begin(method: string | null, target: string | null, headBytes: number): AccessRecord {
    return new AccessRecord(performance.now(), method, target, headBytes)
  }

  /**
   * Queues the record's line. `code`: the error code when the ingress answered (or ended) the
   * request itself; `incomplete`: the exchange ended before its response did.
   */
  write(record: AccessRecord, conn: AccessLogConnection, code?: string, incomplete?: boolean): void {
    if (this.#closing !== undefined || this.#closed) return
    const endMs = performance.now()
    const at = Number.isNaN(record.atMs) ? endMs : record.atMs
    const s = record.session
    const line =
      `{"time":"${this.#isoTime(at)}","tunnel":${this.#tunnel.of(conn.tunnelId)},"method":${this.#method.of(record.method)},` +
      `"path":${record.path === null ? 'null' : JSON.stringify(record.path)},"status":${record.status ?? 'null'},` +
      `"bytesIn":${record.bytesIn},"bytesOut":${record.bytesOut},"durationMs":${millisText(Math.round((endMs - at) * 1000))},` +
      `"client":${this.#client.of(conn.clientAddress)},"session":${this.#session.of(s?.sessionId)},"node":${this.#node.of(s?.nodeId)},"code":${q(code)}` +
      (s?.peerId === undefined ? '' : `,"forwardedTo":${q(s.peerId)}`) +
      (conn.forwardedFrom === undefined ? '' : `,"forwardedFrom":${q(conn.forwardedFrom)}`) +
      (incomplete === true ? ',"incomplete":true}\n' : '}\n')
    if (this.#pendingBytes + line.length > this.#maxBytes) {
      this.#dropped++
      if (this.#warnNow()) {
        this.#log.warn({ dropped: this.#dropped - this.#droppedReported, droppedTotal: this.#dropped }, 'access log cannot keep up; lines dropped')
        this.#droppedReported = this.#dropped
      }
      return
    }
    // UTF-8 takes at most 3 bytes per UTF-16 unit: with that much room the line fits whole.
    const room = line.length * 3
    if (this.#chunk === undefined || room > this.#chunk.length - this.#used) {
      if (this.#chunk !== undefined && this.#used > 0) this.#full.push(this.#chunk.subarray(0, this.#used))
      this.#chunk = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, room))
      this.#used = 0
    }
    const bytes = this.#chunk.write(line, this.#used)
    this.#lines++
    this.#used += bytes
    this.#pendingBytes += bytes
    if (this.#full.length > 0) this.#flushNow()
    else this.#timer ??= setTimeout(this.#flush, FLUSH_DELAY_MS)
  }

  #isoTime(atMs: number): string {
    const ms = Math.floor(TIME_ORIGIN_MS + atMs)
    if (ms !== this.#isoMs) {
      this.#isoMs = ms
      this.#iso = new Date(ms).toISOString()
    }
    return this.#iso
  }

  #flushNow(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer)
      this.#timer = undefined
    }
    if (this.#writing) return
    if (this.#reopen) {
      this.#reopenNow()
      return
    }
    const out = this.#full
    if (this.#chunk !== undefined && this.#used > 0) out.push(this.#chunk.subarray(0, this.#used))
    // The chunk's bytes are in flight: the next line starts a fresh one.
    this.#chunk = undefined
    this.#used = 0
    this.#full = []
    if (out.length === 0) {
      if (this.#closing !== undefined) this.#finish()
      return
    }
    let bytes = 0
    for (const b of out) bytes += b.length
    this.#writing = true
    this.#writeOut(out, bytes)
  }

  /** Writes all of `bufs` (a pipe may take part of them, or none for now), then goes on. */
  #writeOut(bufs: Buffer[], bytes: number): void {
    writev(this.#fd, bufs, (err, written) => {
      if (err !== null && (err.code === 'EAGAIN' || err.code === 'EWOULDBLOCK')) {
        // Standard output as a non-blocking pipe whose reader is behind: try again shortly.
        setTimeout(() => this.#writeOut(bufs, bytes), 10)
        return
      }
      if (err === null && written < bytesOf(bufs)) {
        this.#writeOut(skip(bufs, written), bytes)
        return
      }
      if (err !== null && this.#warnNow()) this.#log.warn({ err: err.message }, 'access log write failed; lines are being lost')
      this.#writing = false
      this.#pendingBytes -= bytes
      this.#afterWrite()
    })
  }

  /** Lines that came meanwhile wait for their flush unless a chunk filled; a close or a reopen goes on at once. */
  #afterWrite(): void {
    if (this.#closing !== undefined || this.#reopen || this.#full.length > 0) this.#flushNow()
    else if (this.#used > 0) this.#timer ??= setTimeout(this.#flush, FLUSH_DELAY_MS)
  }

  #reopenNow(): void {
    this.#reopen = false
    this.#writing = true
    open(this.#path!, 'a', 0o600, (err, fd) => {
      if (err !== null) {
        // The old file stays in use: lines go on being written somewhere.
        this.#log.warn({ err: err.message }, 'access log could not be reopened; still writing to the old file')
      } else {
        close(this.#fd, () => {})
        this.#fd = fd
      }
      this.#writing = false
      this.#afterWrite()
    })
  }

  #finish(): void {
    const done = this.#closing!
    this.#closing = undefined
    this.#closed = true
    if (this.#path === undefined) done()
    else close(this.#fd, () => done())
  }

  #warnNow(): boolean {
    const now = performance.now()
    if (now - this.#lastWarningMs < DROP_WARNING_INTERVAL_MS) return false
    this.#lastWarningMs = now
    return true
  }

  /** Lines taken for writing (not those dropped). */
  get lines(): number {
    return this.#lines
  }

  /** Lines dropped because the destination could not keep up. */
  get dropped(): number {
    return this.#dropped
  }

  /** Starts writing to a fresh file at the same path (after logrotate renamed it); a no-op on standard output. */
  reopen(): void {
    if (this.#path === undefined || this.#closed || this.#closing !== undefined) return
    this.#reopen = true
    this.#flushNow()
  }

  /** Writes what is queued and closes the file. */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve()
    return new Promise((resolve) => {
      const previous = this.#closing
      this.#closing = () => {
        previous?.()
        resolve()
      }
      this.#flushNow()
    })
  }
}

function bytesOf(bufs: readonly Buffer[]): number {
  let n = 0
  for (const b of bufs) n += b.length
  return n
}

/** What is left of `bufs` after its first `n` bytes. */
function skip(bufs: readonly Buffer[], n: number): Buffer[] {
  const out: Buffer[] = []
  for (const b of bufs) {
    if (n >= b.length) n -= b.length
    else {
      out.push(n === 0 ? b : b.subarray(n))
      n = 0
    }
  }
  return out
}

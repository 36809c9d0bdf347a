import { once } from 'node:events'
import { pino } from 'pino'
import { TunnelError } from '../../errors/index.ts'
import type { Logger } from '../../observability/index.ts'

/**
 * Bytes of lines waiting for the disk before new lines are dropped (and counted) instead: a slow
 * or stalled disk must cost the ingress neither latency nor unbounded memory. About 30 000 lines,
 * a few seconds of a busy ingress.
 */
export const ACCESS_LOG_MAX_BUFFERED_BYTES = 8 * 1024 * 1024
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

/**
 * The access log (`--access-log`): one JSON line per caller request, appended to a file (created
 * 0600) or written to standard output (`-`). Lines are queued in memory and written by the event
 * loop's own turns, never synchronously; past ACCESS_LOG_MAX_BUFFERED_BYTES waiting they are
 * dropped and counted. `reopen()` (SIGHUP) starts a new file after logrotate moved the old one.
 * Only the fields below are ever written: no query string, no header, no credential.
 */
export class AccessLog {
  readonly #out: ReturnType<typeof pino.destination>
  readonly #log: Logger
  readonly #isFile: boolean
  #dropped = 0
  #droppedReported = 0
  #lastDropWarningMs = -Infinity
  #closed = false

  private constructor(out: ReturnType<typeof pino.destination>, isFile: boolean, log: Logger) {
    this.#out = out
    this.#isFile = isFile
    this.#log = log
    out.on('drop', () => this.#onDrop())
    out.on('error', (err: Error) => {
      // A full or failing disk loses lines, not the server; the process log says so.
      if (this.#warnNow()) this.#log.warn({ err: err.message }, 'access log write failed; lines are being lost')
    })
  }

  /** Opens (creates 0600, or appends to) `destination`, or standard output for `-`; fails at once when it cannot. */
  static async open(destination: string, deps: { log: Logger }): Promise<AccessLog> {
    const isFile = destination !== '-'
    const out = pino.destination({
      ...(isFile ? { dest: destination, append: true, mode: 0o600 } : { fd: 1 }),
      sync: false,
      maxLength: ACCESS_LOG_MAX_BUFFERED_BYTES,
    })
    try {
      await once(out, 'ready')
    } catch (err) {
      out.destroy()
      const e = err as NodeJS.ErrnoException
      const why = e.code === 'ENOENT' ? 'no such directory' : e.code === 'EACCES' ? 'permission denied' : e.code === 'EISDIR' ? 'is a directory' : e.message
      throw new TunnelError('TUN_ERR_CONFIG_INVALID', `accessLog: cannot open ${destination}: ${why}`)
    }
    return new AccessLog(out, isFile, deps.log)
  }

  /** A request whose head is complete (or, with nulls, one refused before its head could be read). */
  begin(method: string | null, target: string | null, headBytes: number): AccessRecord {
    return new AccessRecord(performance.now(), method, target, headBytes)
  }

  /**
   * Writes the record's line. `code`: the error code when the ingress answered (or ended) the
   * request itself; `incomplete`: the exchange ended before its response did.
   */
  write(record: AccessRecord, conn: AccessLogConnection, code?: string, incomplete?: boolean): void {
    if (this.#closed) return
    const endMs = performance.now()
    const at = Number.isNaN(record.atMs) ? endMs : record.atMs
    const s = record.session
    const line: Record<string, unknown> = {
      time: new Date(performance.timeOrigin + at).toISOString(),
      tunnel: conn.tunnelId ?? null,
      method: record.method,
      path: record.path,
      status: record.status,
      bytesIn: record.bytesIn,
      bytesOut: record.bytesOut,
      durationMs: Math.round((endMs - at) * 1000) / 1000,
      client: conn.clientAddress,
      session: s?.sessionId ?? null,
      node: s?.nodeId ?? null,
      code: code ?? null,
    }
    if (s?.peerId !== undefined) line['forwardedTo'] = s.peerId
    if (conn.forwardedFrom !== undefined) line['forwardedFrom'] = conn.forwardedFrom
    if (incomplete === true) line['incomplete'] = true
    this.#out.write(JSON.stringify(line) + '\n')
  }

  /** Lines dropped because the destination could not keep up. */
  get dropped(): number {
    return this.#dropped
  }

  #onDrop(): void {
    this.#dropped++
    if (this.#warnNow()) {
      this.#log.warn({ dropped: this.#dropped - this.#droppedReported, droppedTotal: this.#dropped }, 'access log cannot keep up; lines dropped')
      this.#droppedReported = this.#dropped
    }
  }

  #warnNow(): boolean {
    const now = performance.now()
    if (now - this.#lastDropWarningMs < DROP_WARNING_INTERVAL_MS) return false
    this.#lastDropWarningMs = now
    return true
  }

  /** Starts writing to a fresh file at the same path (after logrotate renamed it); a no-op on standard output. */
  reopen(): void {
    if (this.#closed || !this.#isFile) return
    this.#out.reopen()
  }

  /** Writes what is queued and closes the file. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const closed = once(this.#out, 'close').catch(() => {})
    this.#out.end()
    await closed
  }
}

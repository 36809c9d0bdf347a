import { TunnelError } from '../errors/index.ts'

/**
 * Messages on a session's control stream: one long-lived HTTP/2 stream the server opens right after
 * the upgrade. It exists because the server must never reset a relay stream itself: nghttp2 on the
 * agent (the HTTP/2 *server* of a reversed session) kills the whole session after ~33 received
 * RST_STREAM frames a second (rapid-reset defence), so a caller aborting connections could take the
 * tunnel down. Instead the server asks the agent to abort, and the agent resets from its side.
 *
 * Encoding: one JSON object per line (LF), each line at most MAX_CONTROL_LINE_BYTES.
 */
export type ControlMessage =
  | { t: 'abort'; id: number }
  | { t: 'revoke'; code: string; reason: string }

export const MAX_CONTROL_LINE_BYTES = 4096

export function encodeControlMessage(m: ControlMessage): Buffer {
  return Buffer.from(JSON.stringify(m) + '\n', 'utf8')
}

function validate(v: unknown): ControlMessage {
  if (typeof v === 'object' && v !== null) {
    const m = v as Record<string, unknown>
    if (m.t === 'abort' && Number.isSafeInteger(m.id) && (m.id as number) > 0) return { t: 'abort', id: m.id as number }
    if (m.t === 'revoke' && typeof m.code === 'string' && typeof m.reason === 'string') {
      return { t: 'revoke', code: m.code, reason: m.reason }
    }
  }
  throw new TunnelError('TUN_ERR_HANDSHAKE_BAD_REQUEST', 'invalid control message')
}

/** Incremental decoder; throws TunnelError on an over-long line or an unknown message. */
export class ControlMessageDecoder {
  #pending: Buffer[] = []
  #pendingBytes = 0

  push(chunk: Buffer): ControlMessage[] {
    const out: ControlMessage[] = []
    let start = 0
    for (;;) {
      const lf = chunk.indexOf(0x0a, start)
      if (lf < 0) break
      let line = chunk.subarray(start, lf)
      if (this.#pendingBytes > 0) {
        line = Buffer.concat([...this.#pending, line])
        this.#pending = []
        this.#pendingBytes = 0
      }
      if (line.length > MAX_CONTROL_LINE_BYTES) throw new TunnelError('TUN_ERR_HANDSHAKE_BAD_REQUEST', 'control message too long')
      let parsed: unknown
      try {
        parsed = JSON.parse(line.toString('utf8'))
      } catch {
        throw new TunnelError('TUN_ERR_HANDSHAKE_BAD_REQUEST', 'control message is not JSON')
      }
      out.push(validate(parsed))
      start = lf + 1
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start)
      this.#pendingBytes += rest.length
      if (this.#pendingBytes > MAX_CONTROL_LINE_BYTES) throw new TunnelError('TUN_ERR_HANDSHAKE_BAD_REQUEST', 'control message too long')
      this.#pending.push(rest)
    }
    return out
  }
}

import type { Http1Limits } from '../../protocol/http1/http1-limits.ts'
import type { RequestFramerCallbacks } from '../../protocol/http1/request-framer.ts'
import { RequestFramer } from '../../protocol/http1/request-framer.ts'
import type { ResponseFramerCallbacks } from '../../protocol/http1/response-framer.ts'
import { ResponseFramer } from '../../protocol/http1/response-framer.ts'
import type { RequestHead } from '../../protocol/http1/request-head.ts'
import type { ResponseHead } from '../../protocol/http1/response-head.ts'

export type FramerEvent =
  | { type: 'head'; head: RequestHead | ResponseHead }
  | { type: 'body'; bytes: Buffer }
  | { type: 'end' }
  | { type: 'upgrade'; rest: Buffer }

/**
 * Records callbacks in order. Consecutive onBody calls merge into one event: how body bytes are
 * sliced depends on how the input was chunked, and that is the one thing allowed to differ.
 */
export class EventRecorder {
  readonly events: FramerEvent[] = []
  /** What a relay would pass on from a response stream: each head as received, body bytes, bytes after a 101. */
  readonly relayed: Buffer[] = []

  readonly request: RequestFramerCallbacks = {
    onHead: (head) => this.events.push({ type: 'head', head }),
    onBody: (chunk) => this.body(chunk),
    onMessageEnd: () => this.events.push({ type: 'end' }),
  }

  readonly response: ResponseFramerCallbacks = {
    onHead: (head, raw) => {
      this.relayed.push(Buffer.from(raw))
      this.events.push({ type: 'head', head })
    },
    onBody: (chunk) => {
      this.relayed.push(Buffer.from(chunk))
      this.body(chunk)
    },
    onMessageEnd: () => this.events.push({ type: 'end' }),
    onUpgrade: (rest) => {
      this.relayed.push(Buffer.from(rest))
      this.events.push({ type: 'upgrade', rest: Buffer.from(rest) })
    },
  }

  /** Heads only, for assertions that do not care about the rest. */
  heads<T extends RequestHead | ResponseHead>(): T[] {
    return this.events.flatMap((e) => (e.type === 'head' ? [e.head as T] : []))
  }

  /** Every body byte, concatenated. */
  bodyBytes(): Buffer {
    return Buffer.concat(this.events.flatMap((e) => (e.type === 'body' ? [e.bytes] : [])))
  }

  /** Compact form for deepStrictEqual: heads as plain objects, bytes as latin1 text. */
  normalized(): unknown[] {
    return this.events.map((e) => {
      switch (e.type) {
        case 'head':
          // a head's field list (and a response's reason) are getters, which a spread leaves out
          return { head: 'statusCode' in e.head ? { ...e.head, reason: e.head.reason, headers: e.head.headers } : { ...e.head, headers: e.head.headers } }
        case 'body':
          return { body: e.bytes.toString('latin1') }
        case 'end':
          return 'end'
        case 'upgrade':
          return { upgrade: e.rest.toString('latin1') }
      }
    })
  }

  private body(chunk: Buffer): void {
    if (chunk.length === 0) throw new Error('onBody called with an empty chunk')
    const last = this.events[this.events.length - 1]
    if (last?.type === 'body') last.bytes = Buffer.concat([last.bytes, chunk])
    else this.events.push({ type: 'body', bytes: Buffer.from(chunk) })
  }
}

/** Splits `bytes` at the given cut points (sorted, inside the buffer). */
export function splitAt(bytes: Buffer, cuts: readonly number[]): Buffer[] {
  const parts: Buffer[] = []
  let start = 0
  for (const cut of cuts) {
    parts.push(bytes.subarray(start, cut))
    start = cut
  }
  parts.push(bytes.subarray(start))
  return parts
}

export function oneByteChunks(bytes: Buffer): Buffer[] {
  const parts: Buffer[] = []
  for (let i = 0; i < bytes.length; i++) parts.push(bytes.subarray(i, i + 1))
  return parts
}

/** Feeds request bytes in the given pieces; accepts a pending upgrade to collect the held bytes. */
export function runRequestFramer(
  parts: readonly Buffer[],
  limits?: Partial<Http1Limits>,
): { events: unknown[]; afterUpgrade: Buffer | undefined; state: string } {
  const recorder = new EventRecorder()
  const framer = new RequestFramer(recorder.request, limits)
  for (const part of parts) framer.push(part)
  const afterUpgrade = framer.state === 'awaiting-upgrade' ? Buffer.from(framer.upgradeAccepted()) : undefined
  return { events: recorder.normalized(), afterUpgrade, state: framer.state }
}

/**
 * Feeds response bytes in the given pieces. Once the framer hands over after a 101, the remaining
 * pieces are what the caller would relay raw, so they are appended to the upgrade event.
 */
export function runResponseFramer(
  parts: readonly Buffer[],
  methods: readonly string[],
  closeAtEnd: boolean,
): unknown[] {
  const recorder = new EventRecorder()
  const framer = new ResponseFramer(recorder.response)
  for (const method of methods) framer.expect(method)
  for (const part of parts) {
    if (framer.state === 'upgraded') {
      const last = recorder.events[recorder.events.length - 1]
      if (last?.type !== 'upgrade') throw new Error('upgraded without an upgrade event')
      last.rest = Buffer.concat([last.rest, part])
      continue
    }
    framer.push(part)
  }
  if (closeAtEnd) framer.end()
  return recorder.normalized()
}

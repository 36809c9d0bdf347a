import { TunnelError } from '../../errors/index.ts'
import type { Frame, FrameFormat } from '../wire/frame-decoder.ts'

/**
 * Messages on an authenticated bus link: 4-byte-length frames (wire/frame-decoder.ts) up to a
 * configured maximum (1 MiB by default), each sealed with the link's MAC (wire/frame-seal.ts).
 *
 *   EVENT 0x10  JSON {"i": sender incarnation, "s": sequence number, "t": topic, "d": data}
 *   ACK   0x11  JSON {"s": highest sequence number received and delivered on this link}
 *   PING  0x12  empty — keepalive; any frame proves the peer alive
 *   PONG  0x13  empty
 *
 * Sequence numbers grow by one per published event within one incarnation (one process lifetime)
 * of the sender; with the incarnation they let a receiver drop retransmitted duplicates.
 */
export const FRAME_EVENT = 0x10
export const FRAME_ACK = 0x11
export const FRAME_PING = 0x12
export const FRAME_PONG = 0x13

export const DEFAULT_MAX_BUS_FRAME_BYTES = 1024 * 1024

export function busFrameFormat(maxFrameBytes: number): FrameFormat {
  return { lengthBytes: 4, maxPayloadBytes: maxFrameBytes }
}

export interface BusEvent {
  incarnation: string
  seq: number
  topic: string
  data: unknown
}

export type BusMessage = { type: 'event'; event: BusEvent } | { type: 'ack'; seq: number } | { type: 'ping' } | { type: 'pong' }

/**
 * The payload of an EVENT frame. Frames are sealed per link when written (wire/frame-seal.ts), so
 * what an outbox keeps, and resends after a reconnect, is the payload. Refuses
 * (TUN_ERR_CLUSTER_FRAME_TOO_LARGE) an event over the format's maximum when it is published, not
 * when a link first tries to write it.
 */
export function encodeEventPayload(format: FrameFormat, event: BusEvent): Buffer {
  const payload = Buffer.from(JSON.stringify({ i: event.incarnation, s: event.seq, t: event.topic, d: event.data }), 'utf8')
  if (payload.length > format.maxPayloadBytes) {
    throw new TunnelError('TUN_ERR_CLUSTER_FRAME_TOO_LARGE', `a ${payload.length}-byte event exceeds the ${format.maxPayloadBytes}-byte limit`, {
      details: { bytes: payload.length, maxPayloadBytes: format.maxPayloadBytes },
    })
  }
  return payload
}

export function encodeAckPayload(seq: number): Buffer {
  return Buffer.from(JSON.stringify({ s: seq }), 'utf8')
}

export function decodeBusMessage(frame: Frame): BusMessage {
  switch (frame.type) {
    case FRAME_PING:
    case FRAME_PONG:
      if (frame.payload.length !== 0) throw busError(`a ${frame.type === FRAME_PING ? 'PING' : 'PONG'} frame carries no payload`)
      return { type: frame.type === FRAME_PING ? 'ping' : 'pong' }
    case FRAME_ACK: {
      const m = json(frame.payload)
      if (!isSeq(m['s'])) throw busError('an ACK frame needs a positive integer "s"')
      return { type: 'ack', seq: m['s'] }
    }
    case FRAME_EVENT: {
      const m = json(frame.payload)
      const incarnation = m['i']
      const topic = m['t']
      if (typeof incarnation !== 'string' || incarnation.length === 0 || incarnation.length > 100) throw busError('an EVENT frame needs an incarnation "i"')
      if (!isSeq(m['s'])) throw busError('an EVENT frame needs a positive integer "s"')
      if (typeof topic !== 'string' || !/^[a-z][a-z0-9]*(\.[a-z][a-z0-9]*)*$/.test(topic) || topic.length > 100) throw busError('an EVENT frame needs a topic "t"')
      return { type: 'event', event: { incarnation, seq: m['s'], topic, data: m['d'] } }
    }
    default:
      throw busError(`unknown bus frame type ${frame.type}`)
  }
}

function isSeq(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) > 0
}

function json(payload: Buffer): Record<string, unknown> {
  let v: unknown
  try {
    v = JSON.parse(payload.toString('utf8'))
  } catch {
    throw busError('a bus frame payload is not JSON')
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw busError('a bus frame payload is not a JSON object')
  return v as Record<string, unknown>
}

function busError(message: string): TunnelError {
  return new TunnelError('TUN_ERR_CLUSTER_BUS_PROTOCOL', message)
}

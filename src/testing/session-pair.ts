import { once } from 'node:events'
import { connect, createServer, type Socket } from 'node:net'
import type { TunnelError } from '../errors/index.ts'
import { silentLogger } from '../observability/index.ts'
import type { ControlMessage, Refusal } from '../protocol/index.ts'
import { AgentSession } from '../server/agent-gateway/agent-session.ts'
import { SessionMux, type RelayStream, type SessionMuxOptions } from '../transport/session-mux/index.ts'
import { readIntoBuffer } from '../transport/accepted-socket-reads.ts'
import { SessionReader } from '../transport/session-reader.ts'

/** Two ends of one loopback TCP connection (TLS is the e2e tests' business; the framing is the same). */
export async function socketPair(): Promise<[Socket, Socket]> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const accepted = once(server, 'connection') as Promise<[Socket]>
  const client = connect((server.address() as { port: number }).port, '127.0.0.1')
  const [serverSide] = await accepted
  await once(client, 'connect')
  server.close()
  return [serverSide, client]
}

/**
 * Reads `socket` the way the relays read their connections (decisions 56 and 57): every read lands
 * in one reused buffer (readIntoBuffer), here also scribbled over as soon as `onRead` returns, so
 * anything kept past the call without a copy shows up as changed bytes.
 */
export function scribbledReads(socket: Socket, onRead: (chunk: Buffer) => void): boolean {
  const shared = Buffer.alloc(64 * 1024)
  return readIntoBuffer(socket, shared, (chunk) => {
    onRead(chunk)
    shared.fill(0xee)
  })
}

/** The reads of a session connection through scribbledReads(), for SessionMux's `input`. */
export function reusedBufferReader(socket: Socket): SessionReader {
  const reader = new SessionReader()
  if (!scribbledReads(socket, (chunk) => reader.deliver(chunk))) throw new Error('this socket cannot read into a buffer of ours')
  return reader
}

/** One relay stream as the agent end of a session sees it; the test decides what the agent does. */
export interface ScriptedStream {
  readonly stream: RelayStream
  /** the caller's address the server sent with OPEN */
  readonly address: string
  /** bytes the server sent on the stream, in order */
  readonly received: Buffer[]
  ended: boolean
  lost: TunnelError | undefined
  text(): string
  /** the upstream connection is open: the server may count bytes as delivered from here on */
  accept(): void
  refuse(refusal: Refusal): void
  /** bytes from the "app" to the caller */
  send(text: string | Buffer): void
}

/** The agent's end of a session: a real SessionMux the test drives instead of an upstream relay. */
export interface ScriptedAgent {
  readonly mux: SessionMux
  readonly streams: ScriptedStream[]
  readonly controls: ControlMessage[]
  /** resolves with the n-th stream the server opens (0-based) when it is opened; rejects after 5 s */
  stream(n: number): Promise<ScriptedStream>
}

export interface SessionPair {
  /** the server's end, as the gateway would build it */
  readonly session: AgentSession
  /** the framing under it (to see, say, whether the server has heard a stream's ACCEPT) */
  readonly serverMux: SessionMux
  readonly agent: ScriptedAgent
  /** destroys both ends and waits until both closed */
  close(): Promise<void>
}

const MUX: Omit<SessionMuxOptions, 'role'> = {
  streamWindowBytes: 64 * 1024,
  maxStreams: 100,
  pingIntervalMs: 60_000,
  pingTimeoutMs: 60_000,
  pingTimeoutMessage: 'peer did not answer a ping',
}

let nextSession = 0

/**
 * A server-side AgentSession and its agent end over loopback: the real framing, flow control and
 * lifecycle, with the agent's behaviour scripted by the test (accept, answer, refuse, abort, leave).
 */
export async function openSessionPair(
  options: { tunnelId?: string; nodeId?: string; agentMaxStreams?: number; serverMaxStreams?: number; drainTimeoutMs?: number } = {},
): Promise<SessionPair> {
  const [serverSocket, agentSocket] = await socketPair()
  // The server reads its session the way the gateway makes it (decision 57): into a reused buffer.
  const serverMux = new SessionMux(serverSocket, { ...MUX, role: 'server', input: reusedBufferReader(serverSocket), ...(options.serverMaxStreams === undefined ? {} : { maxStreams: options.serverMaxStreams }) })
  const agentMux = new SessionMux(agentSocket, { ...MUX, role: 'agent', ...(options.agentMaxStreams === undefined ? {} : { maxStreams: options.agentMaxStreams }) })
  const streams: ScriptedStream[] = []
  const waiting = new Map<number, (s: ScriptedStream) => void>()
  const controls: ControlMessage[] = []
  agentMux.on('control', (m: ControlMessage) => controls.push(m))
  agentMux.on('stream', (stream: RelayStream, address: string) => {
    const scripted: ScriptedStream = {
      stream,
      address,
      received: [],
      ended: false,
      lost: undefined,
      text: () => Buffer.concat(scripted.received).toString('latin1'),
      accept: () => stream.accept(),
      refuse: (refusal) => stream.refuse(refusal),
      send: (data) => {
        stream.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data)
      },
    }
    stream.attach({
      data: (chunk) => scripted.received.push(Buffer.from(chunk)),
      end: () => (scripted.ended = true),
      lost: (reason) => (scripted.lost = reason),
      writable: () => {},
    })
    streams.push(scripted)
    waiting.get(streams.length - 1)?.(scripted)
  })
  await Promise.all([once(serverMux, 'settings'), once(agentMux, 'settings')])
  const n = ++nextSession
  const session = new AgentSession(
    serverMux,
    {
      sessionId: `session-${n}`,
      tunnelId: options.tunnelId ?? 'tunnel-1',
      nodeId: options.nodeId ?? `node-${n}`,
      instance: '',
      remoteAddress: '127.0.0.1',
      connectedAt: new Date().toISOString(),
    },
    { drainTimeoutMs: options.drainTimeoutMs ?? 2000, log: silentLogger() },
  )
  return {
    session,
    serverMux,
    agent: {
      mux: agentMux,
      streams,
      controls,
      stream: (i) => {
        const s = streams[i]
        if (s !== undefined) return Promise.resolve(s)
        return new Promise((resolve, reject) => {
          const timer = setTimeout(() => {
            waiting.delete(i)
            reject(new Error(`the server opened no stream #${i} on session ${n} within 5 s (${streams.length} opened)`))
          }, 5000)
          waiting.set(i, (opened) => {
            clearTimeout(timer)
            resolve(opened)
          })
        })
      },
    },
    async close() {
      const closed = [serverMux, agentMux].filter((m) => !m.closed).map((m) => once(m, 'close'))
      session.destroy()
      agentMux.destroy()
      await Promise.all(closed)
    },
  }
}

import { Counter, Gauge, Registry } from 'prom-client'
import type { AgentMetricsSink, ByteCountingSocket } from './metrics-sink.ts'
import { processMetricsRegistry } from './process-metrics.ts'

/** What the agent metrics read at scrape time; nothing here is called on the data path. */
export interface AgentMetricsSource {
  /** the node's status; `status` is null while an instance node waits for its key */
  status(): { readonly status: string | null; readonly sessions: number; readonly sessionsWanted: number }
  /** relay streams the node's sessions carry now */
  relayStreams(): number
  /** the cluster node's authentication metrics in the text format; '' without a cluster node */
  clusterMetrics(): string
}

const NODE_STATUSES = ['CONNECTING', 'CONNECTED', 'UNAVAILABLE', 'ERROR', 'NONE'] as const

/**
 * The agent's metrics in a registry of its own (tests run several agents in one process). The
 * agent never touches relayed bytes (decision 2: a byte pipe), so byte counts come from the
 * upstream sockets' own counters: added up when a connection closes, and read from the open ones
 * at scrape time, so a long-lived connection (a WebSocket) shows its traffic as it flows.
 */
export class AgentMetrics implements AgentMetricsSink {
  readonly registry = new Registry()
  readonly #openUpstreams = new Set<ByteCountingSocket>()
  /** bytes of upstream connections already closed */
  #closedBytesRead = 0
  #closedBytesWritten = 0
  readonly #reconnects: Counter
  readonly #connectFailures: Counter<'code'>
  readonly #upstreamOpened: Counter
  readonly #upstreamFailures: Counter<'code'>
  readonly #source: AgentMetricsSource

  constructor(source: AgentMetricsSource) {
    this.#source = source
    const registers = [this.registry]
    const sessions = sessionFamilies(registers, source)
    this.#reconnects = sessions.reconnects
    this.#connectFailures = sessions.connectFailures
    const upstream = upstreamFamilies(registers, {
      open: () => this.#openUpstreams,
      closedBytesRead: () => this.#closedBytesRead,
      closedBytesWritten: () => this.#closedBytesWritten,
    })
    this.#upstreamOpened = upstream.opened
    this.#upstreamFailures = upstream.failures
  }

  sessionConnected(reconnect: boolean): void {
    if (reconnect) this.#reconnects.inc()
  }

  connectFailed(code: string): void {
    this.#connectFailures.inc({ code })
  }

  upstreamConnected(socket: ByteCountingSocket): void {
    this.#upstreamOpened.inc()
    this.#openUpstreams.add(socket)
  }

  upstreamClosed(socket: ByteCountingSocket): void {
    if (!this.#openUpstreams.delete(socket)) return
    this.#closedBytesRead += socket.bytesRead
    this.#closedBytesWritten += socket.bytesWritten
  }

  upstreamConnectFailed(code: string): void {
    this.#upstreamFailures.inc({ code })
  }

  get contentType(): string {
    return this.registry.contentType
  }

  /** The whole exposition: process metrics, this agent's, then the cluster node's. */
  async render(): Promise<string> {
    const [processText, ownText] = await Promise.all([processMetricsRegistry().metrics(), this.registry.metrics()])
    return processText + ownText + this.#source.clusterMetrics()
  }
}

type Registers = Registry[]

/** The node's sessions, status and relay streams, read at scrape time; returns the counters the sessions count into. */
function sessionFamilies(registers: Registers, source: AgentMetricsSource): { reconnects: Counter; connectFailures: Counter<'code'> } {
  new Gauge({
    name: 'apptunnel_agent_sessions',
    help: 'Sessions of this node connected to the tunnel server.',
    registers,
    collect() {
      this.set(source.status().sessions)
    },
  })
  new Gauge({
    name: 'apptunnel_agent_sessions_wanted',
    help: 'Sessions this node keeps to the tunnel server when all is well (--sessions; 0 while it has no key).',
    registers,
    collect() {
      this.set(source.status().sessionsWanted)
    },
  })
  new Gauge({
    name: 'apptunnel_agent_status',
    help: 'Status of this node: 1 on the series of its current status, 0 on the others (NONE: waiting for a key).',
    labelNames: ['status'],
    registers,
    collect() {
      const current = source.status().status ?? 'NONE'
      this.reset()
      for (const status of NODE_STATUSES) this.set({ status }, status === current ? 1 : 0)
      if (!(NODE_STATUSES as readonly string[]).includes(current)) this.set({ status: current }, 1)
    },
  })
  const reconnects = new Counter({
    name: 'apptunnel_agent_reconnects_total',
    help: 'Sessions set up again after an earlier session of the same slot was lost or ended.',
    registers,
  })
  const connectFailures = new Counter({
    name: 'apptunnel_agent_connect_failures_total',
    help: 'Failed attempts to open a session to the tunnel server, by error code.',
    labelNames: ['code'],
    registers,
  })
  new Gauge({
    name: 'apptunnel_agent_relay_streams',
    help: 'Relay streams in flight over this node\'s sessions (one per caller connection being relayed).',
    registers,
    collect() {
      this.set(source.relayStreams())
    },
  })
  return { reconnects, connectFailures }
}

/**
 * Connections to the upstream port and their bytes: the closed ones' sums plus the open sockets'
 * own counters; returns the counters the upstream relay counts into.
 */
function upstreamFamilies(
  registers: Registers,
  upstreams: { open(): ReadonlySet<ByteCountingSocket>; closedBytesRead(): number; closedBytesWritten(): number },
): { opened: Counter; failures: Counter<'code'> } {
  const opened = new Counter({
    name: 'apptunnel_agent_upstream_connections_total',
    help: 'Connections opened to the upstream port.',
    registers,
  })
  new Gauge({
    name: 'apptunnel_agent_upstream_connections',
    help: 'Connections to the upstream port open now.',
    registers,
    collect() {
      this.set(upstreams.open().size)
    },
  })
  const failures = new Counter({
    name: 'apptunnel_agent_upstream_connect_failures_total',
    help: 'Connections to the upstream port that could not be opened, by error code.',
    labelNames: ['code'],
    registers,
  })
  const bytes = (closed: () => number, ofOpen: (s: ByteCountingSocket) => number) => () => {
    let n = closed()
    for (const s of upstreams.open()) n += ofOpen(s)
    return n
  }
  totalCounter(registers, 'apptunnel_agent_upstream_sent_bytes_total', 'Bytes sent to the upstream port.', bytes(upstreams.closedBytesWritten, (s) => s.bytesWritten))
  totalCounter(registers, 'apptunnel_agent_upstream_received_bytes_total', 'Bytes received from the upstream port.', bytes(upstreams.closedBytesRead, (s) => s.bytesRead))
  return { opened, failures }
}

/** A counter whose total is read when scraped. */
function totalCounter(registers: Registers, name: string, help: string, read: () => number): void {
  new Counter({
    name,
    help,
    registers,
    collect() {
      const total = read()
      this.reset()
      this.inc(total)
    },
  })
}

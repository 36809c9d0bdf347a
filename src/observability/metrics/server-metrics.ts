import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { Logger } from '../logger.ts'
import type { GatewayMetrics, IngressMetrics } from './metrics-sink.ts'
import { processMetricsRegistry } from './process-metrics.ts'

/** What the server metrics read at scrape time; nothing here is called on the data path. */
export interface ServerMetricsSource {
  /** every registered agent session, live or draining (AgentSession fits) */
  sessions(): Iterable<{ readonly info: { readonly tunnelId: string }; readonly isLive: boolean; readonly activeStreams: number }>
  /** every tunnel with its cloud status (INCOMPLETE, CONNECTED, UNAVAILABLE); reads the database */
  tunnelStatuses(): Promise<ReadonlyArray<{ readonly id: string; readonly status: string }>>
  /** caller connections the ingress holds open */
  ingressConnections(): number
  /** the cluster node's authentication metrics in the text format; '' without a cluster node */
  clusterMetrics(): string
  /** the access log's line counts; undefined when it is off */
  accessLog(): { readonly lines: number; readonly dropped: number } | undefined
}

/**
 * Seconds. The tunnel adds about a millisecond on loopback, so the low end is finer than
 * prom-client's default; the top reaches the default upstream response timeout (60 s).
 */
const REQUEST_DURATION_BUCKETS_SECONDS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx', 'other'] as const
const TUNNEL_STATUSES = ['INCOMPLETE', 'CONNECTED', 'UNAVAILABLE'] as const

/**
 * The tunnel server's metrics in a registry of its own (several servers may share a process).
 * Counters the data path touches per request or per chunk are plain numbers here, copied into
 * prom-client when scraped (a prom-client `inc()` costs ~90 ns, a field add a few); gauges are
 * read from the source at scrape time, so the data path does nothing for them.
 */
export class ServerMetrics implements IngressMetrics, GatewayMetrics {
  readonly registry = new Registry()
  readonly #responsesByClass = new Float64Array(STATUS_CLASSES.length)
  #bytesReceived = 0
  #bytesSent = 0
  readonly #duration: Histogram
  readonly #authFailures: Counter<'code'>
  readonly #source: ServerMetricsSource

  constructor(source: ServerMetricsSource, deps: { log: Logger }) {
    this.#source = source
    const registers = [this.registry]
    this.#duration = ingressFamilies(registers, {
      responsesByClass: this.#responsesByClass,
      bytesReceived: () => this.#bytesReceived,
      bytesSent: () => this.#bytesSent,
      connections: () => source.ingressConnections(),
    })
    sessionFamilies(registers, source, deps.log)
    accessLogFamilies(registers, source)
    this.#authFailures = new Counter({
      name: 'apptunnel_gateway_auth_failures_total',
      help: 'Agent connects refused for their key (malformed, unknown tunnel, wrong secret) or for too many such failures, by error code.',
      labelNames: ['code'],
      registers,
    })
  }

  now(): number {
    return performance.now()
  }

  responseStarted(statusCode: number, headAtMs: number): void {
    const hundreds = Math.trunc(statusCode / 100)
    this.#responsesByClass[hundreds >= 1 && hundreds <= 5 ? hundreds - 1 : 5]!++
    if (headAtMs >= 0) this.#duration.observe((performance.now() - headAtMs) / 1000)
  }

  bytesReceived(bytes: number): void {
    this.#bytesReceived += bytes
  }

  bytesSent(bytes: number): void {
    this.#bytesSent += bytes
  }

  authFailed(code: string): void {
    this.#authFailures.inc({ code })
  }

  get contentType(): string {
    return this.registry.contentType
  }

  /** The whole exposition: process metrics, this server's, then the cluster node's. */
  async render(): Promise<string> {
    const [processText, ownText] = await Promise.all([processMetricsRegistry().metrics(), this.registry.metrics()])
    return processText + ownText + this.#source.clusterMetrics()
  }
}

type Registers = Registry[]

/** Requests, their durations, bytes and connections at the ingress; returns the duration histogram the data path observes. */
function ingressFamilies(
  registers: Registers,
  counts: { responsesByClass: Float64Array; bytesReceived(): number; bytesSent(): number; connections(): number },
): Histogram {
  new Counter({
    name: 'apptunnel_ingress_requests_total',
    help: 'Responses the ingress started to callers (the upstream\'s and its own error answers), by status class.',
    labelNames: ['class'],
    registers,
    collect() {
      this.reset()
      STATUS_CLASSES.forEach((c, i) => this.inc({ class: c }, counts.responsesByClass[i]!))
    },
  })
  const duration = new Histogram({
    name: 'apptunnel_ingress_request_duration_seconds',
    help: 'From a complete request head to the response head sent back, in seconds.',
    buckets: [...REQUEST_DURATION_BUCKETS_SECONDS],
    registers,
  })
  copiedCounter(registers, 'apptunnel_ingress_received_bytes_total', 'Bytes received from callers at the ingress.', counts.bytesReceived)
  copiedCounter(registers, 'apptunnel_ingress_sent_bytes_total', 'Bytes sent to callers by the ingress.', counts.bytesSent)
  new Gauge({
    name: 'apptunnel_ingress_connections',
    help: 'Caller connections the ingress holds open.',
    registers,
    collect() {
      this.set(counts.connections())
    },
  })
  return duration
}

/** Relay streams, live sessions per tunnel and each tunnel's status, all read at scrape time. */
function sessionFamilies(registers: Registers, source: ServerMetricsSource, log: Logger): void {
  new Gauge({
    name: 'apptunnel_relay_streams',
    help: 'Relay streams in flight over agent sessions (one per caller connection being relayed).',
    registers,
    collect() {
      let streams = 0
      for (const s of source.sessions()) streams += s.activeStreams
      this.set(streams)
    },
  })
  new Gauge({
    name: 'apptunnel_tunnel_sessions',
    help: 'Live agent sessions on this server, by tunnel (tunnels with none are left out; see apptunnel_tunnel_status).',
    labelNames: ['tunnel'],
    registers,
    collect() {
      const byTunnel = new Map<string, number>()
      for (const s of source.sessions()) if (s.isLive) byTunnel.set(s.info.tunnelId, (byTunnel.get(s.info.tunnelId) ?? 0) + 1)
      this.reset()
      for (const [tunnel, n] of byTunnel) this.set({ tunnel }, n)
    },
  })
  new Gauge({
    name: 'apptunnel_tunnel_status',
    help: 'Cloud-side status of each tunnel: 1 on the series of its current status, 0 on the others.',
    labelNames: ['tunnel', 'status'],
    registers,
    async collect() {
      let tunnels: Awaited<ReturnType<ServerMetricsSource['tunnelStatuses']>> = []
      try {
        tunnels = await source.tunnelStatuses()
      } catch (err) {
        // /readyz names the database when it fails; stale statuses would mislead, so none are shown.
        log.debug({ err }, 'metrics could not read the tunnel statuses')
      }
      this.reset()
      for (const t of tunnels) for (const status of TUNNEL_STATUSES) this.set({ tunnel: t.id, status }, t.status === status ? 1 : 0)
    },
  })
}

/** The access log's taken and dropped lines; 0 while it is off. */
function accessLogFamilies(registers: Registers, source: ServerMetricsSource): void {
  copiedCounter(registers, 'apptunnel_access_log_lines_total', 'Lines taken for the access log (--access-log), one per caller request; 0 while it is off.', () => source.accessLog()?.lines ?? 0)
  copiedCounter(
    registers,
    'apptunnel_access_log_dropped_lines_total',
    'Access log lines dropped because the destination could not keep up (8 MiB waiting); 0 while the log is off.',
    () => source.accessLog()?.dropped ?? 0,
  )
}

/** A counter kept as a plain number elsewhere and copied into prom-client when scraped. */
function copiedCounter(registers: Registers, name: string, help: string, read: () => number): void {
  new Counter({
    name,
    help,
    registers,
    collect() {
      this.reset()
      this.inc(read())
    },
  })
}

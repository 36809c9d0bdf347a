/**
 * What the data path tells the metrics, as domain verbs. The ingress calls these per request and
 * per chunk, so an implementation only adds to numbers; prom-client reads them at scrape time.
 * A process started without `--metrics-listen` gets the no-op sinks below and never loads
 * prom-client at all.
 */

/** The ingress: one call per response head sent to a caller, one per chunk each way. */
export interface IngressMetrics {
  /**
   * The time a request head was complete, in milliseconds on the sink's own clock; NaN from a sink
   * that measures no durations. Reading a clock costs 50-250 ns on a VM without a fast clock
   * source, so the no-op sink does not.
   */
  now(): number
  /**
   * A final response head went to the caller: the upstream's, or the ingress's own error answer.
   * `headAtMs` is what `now()` said when its request head was complete; NaN when no complete head
   * came before it (a malformed or timed-out head). `tunnelId`: the tunnel the caller asked for,
   * once its first head named one (the console's per-tunnel activity counts by it).
   */
  responseStarted(statusCode: number, headAtMs: number, tunnelId?: string): void
  /** bytes received from a caller */
  bytesReceived(bytes: number, tunnelId?: string): void
  /** bytes sent to a caller */
  bytesSent(bytes: number, tunnelId?: string): void
  /** the connection's first head named its tunnel; `bytesReceived` came on it before that */
  tunnelNamed?(tunnelId: string, bytesReceived: number): void
}

/** The agent gateway: refused agent authentications. */
export interface GatewayMetrics {
  /**
   * an agent presented a key that did not authenticate, or was refused for too many such; `code` is
   * a TunnelError code, `tunnelId` the tunnel the key named (when it named one), `message` why
   */
  authFailed(code: string, tunnelId?: string, message?: string): void
}

/** The byte counters of an upstream TCP connection (a `net.Socket` has them). */
export interface ByteCountingSocket {
  readonly bytesRead: number
  readonly bytesWritten: number
}

/** The agent: its sessions to the server and its connections to the upstream port. */
export interface AgentMetricsSink {
  /** a session finished its set-up; `reconnect` when this session slot had been connected before */
  sessionConnected(reconnect: boolean): void
  /** dialling the server failed; `code` is a TunnelError code */
  connectFailed(code: string): void
  /** an upstream connection was opened; its bytes are read from the socket until it closes */
  upstreamConnected(socket: ByteCountingSocket): void
  /** a socket given to upstreamConnected closed (others are ignored) */
  upstreamClosed(socket: ByteCountingSocket): void
  /** opening an upstream connection failed; `code` is a TunnelError code */
  upstreamConnectFailed(code: string): void
}

export const NO_INGRESS_METRICS: IngressMetrics = Object.freeze({
  now: () => NaN,
  responseStarted() {},
  bytesReceived() {},
  bytesSent() {},
})

export const NO_GATEWAY_METRICS: GatewayMetrics = Object.freeze({
  authFailed() {},
})

export const NO_AGENT_METRICS: AgentMetricsSink = Object.freeze({
  sessionConnected() {},
  connectFailed() {},
  upstreamConnected() {},
  upstreamClosed() {},
  upstreamConnectFailed() {},
})

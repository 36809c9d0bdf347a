import type { GatewayMetrics, IngressMetrics } from '../../observability/metrics/index.ts'
import type { AgentSession } from '../agent-gateway/agent-session.ts'
import type { SessionRegistry } from '../agent-gateway/session-registry.ts'

/** Minutes of history kept per tunnel: the console's "last hour". */
export const ACTIVITY_MINUTES = 60
/** Connection events kept per tunnel. */
export const ACTIVITY_EVENTS = 50

const MINUTE_MS = 60_000

export type ActivityEventKind = 'connect' | 'disconnect' | 'key-rejected'

export interface ActivityEvent {
  at: string
  kind: ActivityEventKind
  /** the agent node, when the event is about one */
  nodeId: string | null
  /** what happened, in words (a disconnect's reason, a rejection's code and message) */
  detail: string
}

export interface ActivityMinute {
  /** the minute's start */
  at: string
  /** responses the ingress started for callers of the tunnel (the app's and its own refusals) */
  requests: number
  /** of which 5xx: the tunnel, the agent or the app failed the caller */
  errors: number
  bytesIn: number
  bytesOut: number
  /** the most live sessions each node held during the minute */
  sessionsByNode: Record<string, number>
}

export interface TunnelActivityView {
  /** oldest first, ACTIVITY_MINUTES of them, the last one still running */
  minutes: ActivityMinute[]
  /** live sessions per node now */
  sessionsNow: Record<string, number>
  /** newest first */
  events: ActivityEvent[]
  /** this server's view: with replicas, each counts the callers and sessions it served */
  scope: 'this server'
}

interface Bucket {
  minute: number
  requests: number
  errors: number
  bytesIn: number
  bytesOut: number
  /** live sessions per node when the minute's first change came */
  sessionsStart: Map<string, number>
  /** the most live sessions per node during the minute */
  sessionsMax: Map<string, number>
}

interface TunnelState {
  buckets: Bucket[]
  events: ActivityEvent[]
  /** live sessions per node now */
  sessions: Map<string, number>
  lastMinute: number
}

/**
 * Per-tunnel activity of the last hour, for the console: the numbers the server counts anyway
 * (responses and their status, bytes each way, agent sessions, refused agent keys), kept per
 * tunnel in one-minute buckets in memory, with the last connection events. Bounded: 60 buckets and
 * 50 events per tunnel, and a tunnel with nothing in the last hour and no session is forgotten.
 * Nothing is stored: a restart starts an empty hour (the audit log keeps what must last).
 */
export class TunnelActivity {
  readonly #tunnels = new Map<string, TunnelState>()
  readonly #now: () => number
  readonly #exists: (tunnelId: string) => boolean

  /**
   * @param deps.exists whether a tunnel id is a real tunnel: callers and agents can name any id,
   *   and only real tunnels get a history (the memory stays bounded by the number of tunnels)
   */
  constructor(deps: { exists: (tunnelId: string) => boolean; now?: () => number }) {
    this.#exists = deps.exists
    this.#now = deps.now ?? Date.now
  }

  /** Follows a registry's sessions: connects, disconnects with their reasons, sessions per node. */
  watch(registry: SessionRegistry): this {
    registry.on('session-added', (s: AgentSession) => {
      this.#sessionsChanged(s.info.tunnelId, s.info.nodeId, +1)
      this.#event(s.info.tunnelId, 'connect', s.info.nodeId, `session from ${s.info.remoteAddress}${s.info.instance === '' ? '' : ` (instance ${s.info.instance})`}`)
    })
    registry.on('session-removed', (s: AgentSession) => {
      this.#sessionsChanged(s.info.tunnelId, s.info.nodeId, -1)
      const why = s.closeReason
      this.#event(s.info.tunnelId, 'disconnect', s.info.nodeId, why === undefined ? 'the connection closed' : `${why.message} (${why.code})`)
    })
    return this
  }

  /**
   * Metrics sinks for the ingress and the agent gateway that count per tunnel here and pass
   * everything on to `next` (the Prometheus metrics, when they are on).
   */
  sinks(next: (IngressMetrics & GatewayMetrics) | undefined): IngressMetrics & GatewayMetrics {
    const activity = this
    return {
      now: () => (next === undefined ? NaN : next.now()),
      responseStarted(statusCode, headAtMs, tunnelId) {
        next?.responseStarted(statusCode, headAtMs, tunnelId)
        if (tunnelId === undefined || !activity.#exists(tunnelId)) return
        const b = activity.#bucket(tunnelId)
        b.requests++
        if (statusCode >= 500) b.errors++
      },
      bytesReceived(bytes, tunnelId) {
        next?.bytesReceived(bytes, tunnelId)
        if (tunnelId !== undefined && activity.#exists(tunnelId)) activity.#bucket(tunnelId).bytesIn += bytes
      },
      tunnelNamed(tunnelId, bytes) {
        next?.tunnelNamed?.(tunnelId, bytes)
        if (activity.#exists(tunnelId)) activity.#bucket(tunnelId).bytesIn += bytes
      },
      bytesSent(bytes, tunnelId) {
        next?.bytesSent(bytes, tunnelId)
        if (tunnelId !== undefined && activity.#exists(tunnelId)) activity.#bucket(tunnelId).bytesOut += bytes
      },
      authFailed(code, tunnelId, message) {
        next?.authFailed(code, tunnelId, message)
        if (tunnelId !== undefined && activity.#exists(tunnelId)) activity.#event(tunnelId, 'key-rejected', null, message === undefined ? code : `${message} (${code})`)
      },
    }
  }

  /** The last hour of a tunnel (empty when nothing happened). */
  view(tunnelId: string): TunnelActivityView {
    const nowMinute = Math.floor(this.#now() / MINUTE_MS)
    const state = this.#tunnels.get(tunnelId)
    const buckets = state?.buckets ?? []
    const minutes: ActivityMinute[] = []
    for (let m = nowMinute - ACTIVITY_MINUTES + 1; m <= nowMinute; m++) {
      const b = buckets.find((x) => x.minute === m)
      // Every session change touches its minute's bucket, so in a minute without one the counts
      // were what the next bucket started with (or what they are now).
      const sessions = b !== undefined ? b.sessionsMax : (buckets.find((x) => x.minute > m)?.sessionsStart ?? state?.sessions ?? new Map<string, number>())
      minutes.push({ at: new Date(m * MINUTE_MS).toISOString(), requests: b?.requests ?? 0, errors: b?.errors ?? 0, bytesIn: b?.bytesIn ?? 0, bytesOut: b?.bytesOut ?? 0, sessionsByNode: Object.fromEntries(sessions) })
    }
    return { minutes, sessionsNow: Object.fromEntries(state?.sessions ?? []), events: [...(state?.events ?? [])].reverse(), scope: 'this server' }
  }

  /** A tunnel is gone (deleted): its history goes with it. */
  forget(tunnelId: string): void {
    this.#tunnels.delete(tunnelId)
  }

  #state(tunnelId: string): TunnelState {
    let state = this.#tunnels.get(tunnelId)
    if (state === undefined) {
      state = { buckets: [], events: [], sessions: new Map(), lastMinute: -1 }
      this.#tunnels.set(tunnelId, state)
    }
    return state
  }

  #bucket(tunnelId: string): Bucket {
    const state = this.#state(tunnelId)
    const minute = Math.floor(this.#now() / MINUTE_MS)
    const last = state.buckets[state.buckets.length - 1]
    if (last !== undefined && last.minute === minute) return last
    if (minute !== state.lastMinute) {
      state.lastMinute = minute
      this.#sweep(minute, tunnelId)
    }
    const live = new Map([...state.sessions].filter(([, n]) => n > 0))
    const bucket: Bucket = { minute, requests: 0, errors: 0, bytesIn: 0, bytesOut: 0, sessionsStart: live, sessionsMax: new Map(live) }
    state.buckets.push(bucket)
    while (state.buckets[0]!.minute <= minute - ACTIVITY_MINUTES) state.buckets.shift()
    return bucket
  }

  /** Drops tunnels with no session and nothing in the last hour (at most once a minute per tunnel touched). */
  #sweep(minute: number, except: string): void {
    for (const [id, s] of this.#tunnels) {
      if (id === except) continue
      const newest = s.buckets[s.buckets.length - 1]
      const newestEvent = s.events[s.events.length - 1]
      const quiet = (newest === undefined || newest.minute < minute - ACTIVITY_MINUTES) && (newestEvent === undefined || Date.parse(newestEvent.at) < (minute - ACTIVITY_MINUTES) * MINUTE_MS)
      if (quiet && [...s.sessions.values()].every((n) => n <= 0)) this.#tunnels.delete(id)
    }
  }

  #sessionsChanged(tunnelId: string, nodeId: string, delta: number): void {
    const state = this.#state(tunnelId)
    const n = Math.max(0, (state.sessions.get(nodeId) ?? 0) + delta)
    if (n === 0) state.sessions.delete(nodeId)
    else state.sessions.set(nodeId, n)
    const b = this.#bucket(tunnelId)
    if (n > (b.sessionsMax.get(nodeId) ?? 0)) b.sessionsMax.set(nodeId, n)
  }

  #event(tunnelId: string, kind: ActivityEventKind, nodeId: string | null, detail: string): void {
    const state = this.#state(tunnelId)
    state.events.push({ at: new Date(this.#now()).toISOString(), kind, nodeId, detail })
    if (state.events.length > ACTIVITY_EVENTS) state.events.shift()
  }
}

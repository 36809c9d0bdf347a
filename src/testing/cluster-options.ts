import type { ClusterNodeOptions } from '../cluster/index.ts'

/**
 * A cluster node's options with timings for tests: heartbeats every 100 ms, key polls every
 * 200 ms and a 400 ms grace for a retired key, pings every second, statistics never flushed.
 */
export function testClusterNodeOptions(nodeId: string, overrides: Partial<ClusterNodeOptions> = {}): ClusterNodeOptions {
  return {
    nodeId,
    kind: 'server',
    listen: { host: '127.0.0.1', port: 0 },
    advertise: undefined,
    authDisabled: false,
    authTimeoutMs: 2000,
    authWarnIntervalMs: 60_000,
    keyPollMs: 200,
    keyGraceMs: 400,
    statsIntervalMs: 3_600_000,
    heartbeatIntervalMs: 100,
    pingIntervalMs: 1000,
    keyRefreshMinIntervalMs: 50,
    ...overrides,
  }
}

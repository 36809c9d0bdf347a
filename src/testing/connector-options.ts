import type { AgentConnectorOptions } from '../agent/connector/agent-connector.ts'
import { silentLogger } from '../observability/index.ts'

/**
 * An agent connector's options for tests, without the key: an upstream that is never dialled
 * (port 9), the test server's CA, short timeouts and fast reconnects, a silent log.
 */
export function testConnectorOptions(ca: string, nodeId: string, overrides: Partial<AgentConnectorOptions> = {}): Omit<AgentConnectorOptions, 'key'> {
  return {
    upstream: { host: '127.0.0.1', port: 9 },
    nodeId,
    instance: 'test',
    agentVersion: 'test',
    ca,
    connectTimeoutMs: 2000,
    upstreamConnectTimeoutMs: 1000,
    maxStreams: 10,
    drainTimeoutMs: 200,
    backoff: { initialMs: 50, maxMs: 200 },
    rejectedRetryMs: 60_000,
    log: silentLogger(),
    ...overrides,
  }
}

import { Registry, collectDefaultMetrics } from 'prom-client'

let shared: Registry | undefined

/**
 * prom-client's default metrics (CPU, memory, file descriptors, event loop lag, GC) under their
 * standard names (`process_*`, `nodejs_*`), so stock Node.js dashboards and alerts work unchanged;
 * only the project's own metrics carry `apptunnel_`. One registry per process that every server
 * and agent of the process renders.
 * Once per process, not once per registry: each collectDefaultMetrics call starts an event-loop
 * delay monitor and a GC observer that nothing can stop, so a process starting servers and agents
 * over and over (tests, the demo) would pile them up; and the numbers describe the process anyway.
 */
export function processMetricsRegistry(): Registry {
  if (shared === undefined) {
    shared = new Registry()
    collectDefaultMetrics({ register: shared })
  }
  return shared
}

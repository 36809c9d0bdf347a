import { z } from 'zod'
import { durationMs, listenAddressString } from './config-validation.ts'
import type { OptionDocs } from './config-options.ts'

/**
 * The options both the server and the agent have for their log level and their plain-HTTP
 * /metrics, /healthz and /readyz listener: one schema and one description for both commands.
 */
export const logLevelShape = {
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
}

export const logLevelOptionDocs: OptionDocs<typeof logLevelShape> = {
  logLevel: { description: 'Log level of the JSON log on stderr.' },
}

export const metricsConfigShape = {
  metricsListen: listenAddressString(z).optional(),
  metricsHeadTimeoutMs: durationMs(z, 10_000),
  metricsRequestTimeoutMs: durationMs(z, 15_000),
}

export const metricsOptionDocs: OptionDocs<typeof metricsConfigShape> = {
  metricsListen: { description: 'Plain-HTTP listener of `/metrics`, `/healthz` and `/readyz`, HOST:PORT; off when unset. No authentication: keep it private.' },
  metricsHeadTimeoutMs: { flag: false, description: 'Metrics listener: a request head must arrive within this time of the connection or the last request (408).' },
  metricsRequestTimeoutMs: {
    flag: false,
    description: 'Metrics listener: a whole request, body included, must arrive within this time; a value below `metricsHeadTimeoutMs` counts as that.',
  },
}

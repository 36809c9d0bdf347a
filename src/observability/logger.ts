import { pino, type Logger, type LevelWithSilent } from 'pino'
import { TunnelError } from '../errors/index.ts'
import { colorAllowed, prettyLines } from './pretty-lines.ts'
import { aboveProgress } from './terminal-progress.ts'

export type { Logger }

/**
 * Modules an operator can turn debug logging on for, one at a time (APPTUNNEL_DEBUG=ingress,tunnel),
 * and the `component` of the child loggers each covers.
 */
export const LOG_MODULES: Readonly<Record<string, readonly string[]>> = Object.freeze({
  tunnel: ['agent-gateway', 'connector'],
  ingress: ['ingress', 'access'],
  cluster: ['cluster'],
  api: ['admin-api'],
  console: ['cloud-console', 'onprem-console', 'console-auth'],
  instance: ['instance'],
  metrics: ['metrics'],
})

export type LogFormat = 'json' | 'pretty'

export interface LoggerOptions {
  level?: LevelWithSilent
  name?: string
  destination?: NodeJS.WritableStream
  /** modules (LOG_MODULES keys, or '*') that log at debug whatever `level` says */
  debugModules?: readonly string[]
  /** pretty: one human-readable line per entry (for a terminal); json (default): pino's JSON lines */
  format?: LogFormat
}

/**
 * Reads APPTUNNEL_DEBUG (comma-separated modules, or *) and APPTUNNEL_LOG_FORMAT (json, pretty,
 * or auto: pretty when standard error is a terminal), refusing unknown values by name.
 */
export function logOptionsFromEnv(env: NodeJS.ProcessEnv = process.env, stderrIsTty = process.stderr.isTTY === true): Pick<LoggerOptions, 'debugModules' | 'format'> {
  const debug = (env['APPTUNNEL_DEBUG'] ?? '').split(',').map((m) => m.trim()).filter((m) => m !== '')
  for (const m of debug) {
    if (m !== '*' && !Object.hasOwn(LOG_MODULES, m)) {
      throw new TunnelError('TUN_ERR_CONFIG_INVALID', `APPTUNNEL_DEBUG: unknown module "${m}"; the modules are ${Object.keys(LOG_MODULES).join(', ')} (or * for all)`)
    }
  }
  const raw = (env['APPTUNNEL_LOG_FORMAT'] ?? 'auto').trim()
  if (raw !== 'auto' && raw !== 'json' && raw !== 'pretty') {
    throw new TunnelError('TUN_ERR_CONFIG_INVALID', `APPTUNNEL_LOG_FORMAT: "${raw}" is not one of json, pretty, auto`)
  }
  return { debugModules: debug, format: raw === 'auto' ? (stderrIsTty ? 'pretty' : 'json') : raw }
}

/**
 * The one root logger of a process; modules take `log.child({ component })`. Secrets are redacted
 * by path so that a careless `log.info({ headers })` cannot leak a key or a token.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? 'info'
  const debugComponents = new Set<string>()
  const all = options.debugModules?.includes('*') === true
  for (const m of options.debugModules ?? []) for (const c of LOG_MODULES[m] ?? []) debugComponents.add(c)
  const raise = (child: Logger): void => {
    const component = child.bindings()['component']
    if ((all || (typeof component === 'string' && debugComponents.has(component))) && child.levelVal > pino.levels.values['debug']!) child.level = 'debug'
  }
  const sink = options.destination ?? pino.destination({ fd: 2, sync: true })
  const lines = options.format === 'pretty' ? prettyLines(sink, { color: options.destination === undefined && colorAllowed(process.stderr) }) : sink
  // A line logged during a migration or a drain would otherwise be glued to the progress line.
  const out = options.destination === undefined && process.stderr.isTTY === true ? aboveProgress(lines, process.stderr) : lines
  return pino(
    {
      // '*' makes the whole process verbose, the root logger included.
      level: all && pino.levels.values[level]! > pino.levels.values['debug']! ? 'debug' : level,
      ...(all || debugComponents.size > 0 ? { onChild: raise } : {}),
      ...(options.name === undefined ? {} : { name: options.name }),
      redact: {
        // pino's `*` is one level: each name is listed at the top, one and two levels down.
        paths: [
          ...['authorization', 'Authorization', 'token', 'secret', 'password', 'key', 'securityKey', 'credential', 'credentialValue', 'cookie'].flatMap((f) => [f, `*.${f}`, `*.*.${f}`]),
          'headers["x-apptunnel-credential"]',
          '*.headers["x-apptunnel-credential"]',
          'headers.authorization',
          'req.headers.authorization',
        ],
        censor: '[redacted]',
      },
      base: { pid: process.pid },
    },
    out as pino.DestinationStream,
  )
}

/** A logger that drops everything: the default for library use and most tests. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' })
}

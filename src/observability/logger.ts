import { pino, type Logger, type LevelWithSilent } from 'pino'

export type { Logger }

/**
 * The one root logger of a process; modules take `log.child({ component })`. Secrets are redacted
 * by path so that a careless `log.info({ headers })` cannot leak a key or a token.
 */
export function createLogger(options: { level?: LevelWithSilent; name?: string; destination?: NodeJS.WritableStream } = {}): Logger {
  return pino(
    {
      level: options.level ?? 'info',
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
    options.destination === undefined ? pino.destination({ fd: 2, sync: true }) : (options.destination as pino.DestinationStream),
  )
}

/** A logger that drops everything: the default for library use and most tests. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' })
}

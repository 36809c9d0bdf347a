import { isTunnelError } from '../errors/index.ts'
import { printError } from './output.ts'

/**
 * Runs a command body and turns any failure into one line on stderr (JSON with --json) and a
 * non-zero exit code: a person sees what is wrong and its code, never a stack trace.
 */
export function runCommand(body: () => Promise<void>): Promise<void> {
  return body().catch((err: unknown) => {
    if (isTunnelError(err)) {
      printError(err.code, err.message)
      process.exitCode = err.code === 'TUN_ERR_CLI_USAGE' || err.code === 'TUN_ERR_CONFIG_INVALID' ? 2 : 1
    } else {
      const e = err as NodeJS.ErrnoException
      printError('TUN_ERR_INTERNAL', `unexpected error: ${e?.message ?? String(err)}${e?.code ? ` [${e.code}]` : ''}`, { showCode: false })
      if (process.env.APPTUNNEL_DEBUG_STACK === '1' && e?.stack) process.stderr.write(e.stack + '\n')
      process.exitCode = 1
    }
  })
}

/**
 * Waits for SIGINT/SIGTERM, then runs close once; a second signal exits at once. The handlers are
 * in place when this returns, so call it before telling anyone the process is ready.
 */
export function closeOnSignal(close: () => Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    let closing = false
    const onSignal = (signal: NodeJS.Signals): void => {
      if (closing) process.exit(130)
      closing = true
      process.stderr.write(`apptunnel: ${signal} received, shutting down gracefully\n`)
      close().then(
        () => {
          process.off('SIGINT', onSignal)
          process.off('SIGTERM', onSignal)
          resolve()
        },
        (err: unknown) => {
          process.stderr.write(`apptunnel: shutdown failed: ${String(err)}\n`)
          process.exit(1)
        },
      )
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
  })
}

export { LOG_MODULES, createLogger, logOptionsFromEnv, silentLogger, type LogFormat, type Logger, type LoggerOptions } from './logger.ts'
export { TerminalProgress, aboveProgress, describeDrain, describeMigration, type ProgressClock, type ProgressOutput, type TerminalProgressOptions } from './terminal-progress.ts'

export { LOG_MODULES, createLogger, logOptionsFromEnv, silentLogger, type LogFormat, type Logger, type LoggerOptions } from './logger.ts'

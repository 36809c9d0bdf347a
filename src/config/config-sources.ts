import { TunnelError, isTunnelError } from '../errors/index.ts'
import { agentConfigSchema, agentOptionDocs, loadAgentConfig, type AgentConfig, type AgentConfigInput } from './agent-config.ts'
import { CONFIG_SIDES, readConfigFile, type ConfigFile, type ConfigSide, type SourcedIssue } from './config-file.ts'
import { documentedOptionsOf, nearestName, type DocumentedOption, type OptionInfo } from './config-options.ts'
import { configIssuesOf } from './config-validation.ts'
import { formatIssue } from './config-issues.ts'
import { loadServerConfig, serverConfigSchema, serverOptionDocs, type ServerConfig, type ServerConfigInput } from './server-config.ts'

/** Option values from one place, each with a label saying where it came from. */
export interface ConfigLayer {
  values: Record<string, unknown>
  sources: Record<string, string>
}

export const EMPTY_LAYER: ConfigLayer = { values: {}, sources: {} }

/** The options of one side, each with what the schema says of it and its description. */
export function optionsOfSide(side: ConfigSide): DocumentedOption[] {
  return side === 'server' ? documentedOptionsOf(serverConfigSchema, serverOptionDocs) : documentedOptionsOf(agentConfigSchema, agentOptionDocs)
}

/**
 * APPTUNNEL_* variables that are not options of `server` or `agent` but are read elsewhere (admin
 * commands, key commands, tests). They are let through; any other unknown APPTUNNEL_* variable is
 * refused, because a typo would otherwise leave an option silently at its default.
 */
export const NON_OPTION_VARIABLES: ReadonlySet<string> = new Set([
  'APPTUNNEL_SERVER',
  'APPTUNNEL_TOKEN',
  'APPTUNNEL_DEBUG_STACK',
  'APPTUNNEL_DEBUG',
  'APPTUNNEL_LOG_FORMAT',
  // read by the logger (src/observability/logger.ts, logOptionsFromEnv), which checks them itself
  'APPTUNNEL_DEBUG',
  'APPTUNNEL_LOG_FORMAT',
  'APPTUNNEL_TEST_PG',
  'APPTUNNEL_REQUIRE_PG',
  'APPTUNNEL_CHROMIUM',
  // set by `apptunnel server --workers N` on each worker it forks (src/cli/server-worker.ts)
  'APPTUNNEL_WORKER_INDEX',
])

/** Environment values are text; the schema's type says how to read them. */
function fromEnvText(o: OptionInfo, text: string): unknown {
  const t = text.trim()
  if (o.kind === 'number') return /^[+-]?\d+(\.\d+)?$/.test(t) ? Number(t) : text
  if (o.kind === 'boolean') {
    if (/^(true|1|yes|on)$/i.test(t)) return true
    if (/^(false|0|no|off)$/i.test(t)) return false
  }
  return text
}

/** The APPTUNNEL_<OPTION> variables of one side, and a problem for each unknown APPTUNNEL_* name. */
export function environmentLayer(side: ConfigSide, env: Readonly<Record<string, string | undefined>>): { layer: ConfigLayer; issues: SourcedIssue[] } {
  const own = new Map(optionsOfSide(side).map((o) => [o.env, o]))
  const anySide = new Set(CONFIG_SIDES.flatMap((s) => optionsOfSide(s).map((o) => o.env)))
  const layer: ConfigLayer = { values: {}, sources: {} }
  const issues: SourcedIssue[] = []
  for (const [name, text] of Object.entries(env)) {
    if (!name.startsWith('APPTUNNEL_') || text === undefined) continue
    const option = own.get(name)
    if (option !== undefined) {
      layer.values[option.name] = fromEnvText(option, text)
      layer.sources[option.name] = `env ${name}`
    } else if (!anySide.has(name) && !NON_OPTION_VARIABLES.has(name)) {
      // An option of the other side is left alone: one shell may start both processes.
      const near = nearestName(name, anySide)
      issues.push({ field: name, message: `unknown environment variable${near === undefined ? '' : `; did you mean ${near}?`}`, source: `env ${name}` })
    }
  }
  return { layer, issues }
}

/** The options a file gives one side; a sectioned file without that side's section gives none. */
export function fileLayer(side: ConfigSide, file: ConfigFile | undefined): ConfigLayer {
  if (file === undefined) return EMPTY_LAYER
  const options = file.kind === 'flat' ? file.options : file.sections[side]
  if (options === undefined) return EMPTY_LAYER
  const sources: Record<string, string> = {}
  for (const name of Object.keys(options.values)) sources[name] = `${file.path}:${options.lines[name] ?? 1}`
  return { values: options.values, sources }
}

/** Later layers win: pass them lowest first. */
export function mergeLayers(...layers: ConfigLayer[]): ConfigLayer {
  const merged: ConfigLayer = { values: {}, sources: {} }
  for (const l of layers) {
    Object.assign(merged.values, l.values)
    Object.assign(merged.sources, l.sources)
  }
  return merged
}

export interface ConfigSources {
  file?: ConfigFile | undefined
  env: Readonly<Record<string, string | undefined>>
  flags: ConfigLayer
  /** below the file: generic settings of the host the option falls back to (HTTPS_PROXY for proxy) */
  hostDefaults?: ConfigLayer | undefined
}

export interface LoadedConfig<C> {
  config: Readonly<C>
  /** the merged input the config was validated from, and where each value came from */
  input: ConfigLayer
}

/**
 * Merges defaults < host defaults < file < environment < flags, then validates once through the
 * side's loader. Every problem, from every source, is reported at once, each with its source.
 */
export function loadConfigFromSources(side: 'server', sources: ConfigSources): LoadedConfig<ServerConfig>
export function loadConfigFromSources(side: 'agent', sources: ConfigSources): LoadedConfig<AgentConfig>
export function loadConfigFromSources(side: ConfigSide, sources: ConfigSources): LoadedConfig<ServerConfig | AgentConfig> {
  const env = environmentLayer(side, sources.env)
  const input = mergeLayers(sources.hostDefaults ?? EMPTY_LAYER, fileLayer(side, sources.file), env.layer, sources.flags)
  const issues = [...env.issues]
  let config: Readonly<ServerConfig | AgentConfig> | undefined
  try {
    config = side === 'server' ? loadServerConfig(input.values as ServerConfigInput) : loadAgentConfig(input.values as AgentConfigInput)
  } catch (err) {
    // Other errors (a malformed security key) keep their own code: they are not about the file's shape.
    if (!isTunnelError(err) || err.code !== 'TUN_ERR_CONFIG_INVALID') throw err
    for (const i of configIssuesOf(err)) issues.push({ ...i, source: input.sources[i.field.split('.')[0]!] ?? 'not set' })
  }
  if (issues.length > 0 || config === undefined) throw configInvalid(side, issues)
  return { config, input }
}


export function configInvalid(side: ConfigSide, issues: SourcedIssue[]): TunnelError {
  const lines = issues.map(formatIssue)
  const message = lines.length === 1 ? lines[0]! : `invalid ${side} configuration, ${lines.length} problems:\n  ${lines.join('\n  ')}`
  return new TunnelError('TUN_ERR_CONFIG_INVALID', message, { details: { issues } })
}

/** Reads `--config FILE` for one side; its problems come out as that side's configuration error. */
export async function readConfigFileFor(side: ConfigSide, path: string | undefined): Promise<ConfigFile | undefined> {
  if (path === undefined) return undefined
  try {
    return await readConfigFile(path)
  } catch (err) {
    if (isTunnelError(err) && Array.isArray(err.details['issues'])) throw configInvalid(side, err.details['issues'] as SourcedIssue[])
    throw err
  }
}

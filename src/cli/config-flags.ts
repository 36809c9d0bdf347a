import { Option, type Command } from 'commander'
import type { DocumentedOption } from '../config/config-options.ts'
import type { ConfigLayer } from '../config/config-sources.ts'

/** Flags whose name is not the option's name in kebab-case (the files are given, "File" is implied). */
const FLAG_RENAMES: Readonly<Record<string, string>> = {
  tlsCertFile: '--tls-cert',
  tlsKeyFile: '--tls-key',
  consoleTlsCertFile: '--console-tls-cert',
  consoleTlsKeyFile: '--console-tls-key',
}

/** The command-line flag of a config option, e.g. ingressListen → --ingress-listen. */
export function flagOf(option: string): string {
  return FLAG_RENAMES[option] ?? `--${option.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase()}`
}

/** Last words of option names that say what the value is; other options name it in their table (`value`). */
const VALUE_BY_LAST_WORD: Readonly<Record<string, string>> = {
  file: 'file',
  dir: 'dir',
  url: 'url',
  id: 'id',
  name: 'name',
  domain: 'domain',
  level: 'level',
  listen: 'host:port',
}

/**
 * What --help calls a flag's value (`<ms>`, `<host:port>`); undefined for a switch. More than
 * wording: shell completion offers files after a `<file>` and directories after a `<dir>`.
 */
export function valueNameOf(o: DocumentedOption): string | undefined {
  if (o.kind === 'boolean') return undefined
  if (o.value !== undefined) return o.value
  if (o.kind === 'number') return o.unit === 'ms' ? 'ms' : 'n'
  const lastWord = /(?:^|[A-Z])[a-z0-9]*$/.exec(o.name)![0].toLowerCase()
  return VALUE_BY_LAST_WORD[lastWord] ?? 'value'
}

/**
 * An option's description as --help shows it: the Markdown of docs/configuration.md made plain,
 * with options of this command named by their flags, then the schema's default. `flags`: option
 * name → flag, for the options that have one.
 */
export function helpText(o: DocumentedOption, flags: ReadonlyMap<string, string>): string {
  // A terminal cannot follow a link: a page of the docs is named by its path.
  const text = o.description
    .replace(/\[[^\]]*\]\(([^):]+?)(?:#[^)]*)?\)/g, 'docs/$1')
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/`([^`]+)`/g, (_, code: string) => flags.get(code) ?? code)
  // An empty name and a switch that is off say nothing a person would look for.
  const shown = o.defaultValue !== undefined && o.defaultValue !== '' && o.defaultValue !== false
  return shown ? `${text} (default: ${JSON.stringify(o.defaultValue)})` : text
}

/**
 * A flag for each option that has one, generated from the option: flagOf's name, the value's
 * name, numbers read as numbers, and the description with the default as help. No commander
 * default: the schema's applies, below the file and the environment, and the help text shows it.
 */
export function addConfigFlags(command: Command, options: readonly DocumentedOption[]): Command {
  const flags = new Map(options.filter((o) => o.flag).map((o) => [o.name, flagOf(o.name)]))
  for (const o of options) {
    if (!o.flag) continue
    const value = valueNameOf(o)
    const option = new Option(value === undefined ? flagOf(o.name) : `${flagOf(o.name)} <${value}>`, helpText(o, flags))
    if (o.kind === 'number') option.argParser((v: string) => Number(v))
    // Commander reads --no-X as "X off"; a --no-X that takes a value is an option of its own
    // (--no-proxy, curl's NO_PROXY list).
    if (option.negate && value !== undefined) option.negate = false
    command.addOption(option)
  }
  return command
}

/**
 * The options a person typed. Commander fills in its own defaults too; those must not count as
 * flags, or they would override the config file and the environment.
 */
export function givenOnCommandLine<T extends Record<string, unknown>>(command: Command, opts: T): Partial<T> {
  const out: Partial<T> = {}
  for (const [k, v] of Object.entries(opts)) if (command.getOptionValueSource(k) === 'cli') out[k as keyof T] = v as T[keyof T]
  return out
}

/**
 * The config option each flag of `command` sets: the option whose flag (flagOf) it is. Flags that
 * set no option (--config, --key-file) are not in it. The option's name is written once, in its
 * schema; the flag is derived from it, so a value reaches the config without a hand-kept mapping.
 */
export function optionFlags(command: Command, options: readonly string[]): Map<Option, string> {
  const byFlag = new Map(options.map((name) => [flagOf(name), name]))
  const out = new Map<Option, string>()
  for (const opt of command.options) {
    const name = opt.long === undefined ? undefined : byFlag.get(opt.long)
    if (name !== undefined) out.set(opt, name)
  }
  return out
}

/** The values given as flags, by config option name (what givenOnCommandLine kept, renamed). */
export function configFlagValues(command: Command, given: Record<string, unknown>, options: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [opt, name] of optionFlags(command, options)) {
    const v = given[opt.attributeName()]
    if (v !== undefined) out[name] = v
  }
  return out
}

/**
 * Values as a config layer, labelled "flag --option"; `flags` names flags that are not the option's
 * own (--key-file), `labels` replaces the whole label (values the CLI read from elsewhere).
 */
export function flagLayer(values: Record<string, unknown>, flags: Record<string, string> = {}, labels: Record<string, string> = {}): ConfigLayer {
  const layer: ConfigLayer = { values: {}, sources: {} }
  for (const [k, v] of Object.entries(values)) {
    if (v === undefined) continue
    layer.values[k] = v
    layer.sources[k] = labels[k] ?? `flag ${flags[k] ?? flagOf(k)}`
  }
  return layer
}

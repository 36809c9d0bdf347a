import type { Command, Option } from 'commander'
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

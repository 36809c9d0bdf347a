import type { Command } from 'commander'
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

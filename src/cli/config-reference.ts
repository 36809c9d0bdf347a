import { Command } from 'commander'
import { CONFIG_SIDES, type ConfigSide } from '../config/config-file.ts'
import { optionsOfSide } from '../config/config-sources.ts'
import type { OptionInfo } from '../config/config-options.ts'
import { registerAgentCommand } from './agent-start.ts'
import { flagOf } from './config-flags.ts'
import { registerServerCommand } from './server-start.ts'

/**
 * The option tables of docs/configuration.md, computed from the zod schemas and the commands'
 * flags. Only the descriptions are written by hand; they are read back from the document, so
 * regenerating keeps them and a test can tell when the facts in the document are out of date.
 */

const BEGIN = (side: ConfigSide) => `<!-- ${side}-options:begin (generated: node --import tsx scripts/update-config-doc.ts) -->`
const END = (side: ConfigSide) => `<!-- ${side}-options:end -->`
const HEADER = '| Option | Type | Default | Unit | Environment | Flag | Description |\n| --- | --- | --- | --- | --- | --- | --- |'

function flagsOf(side: ConfigSide): Set<string> {
  const program = new Command()
  if (side === 'server') registerServerCommand(program)
  else registerAgentCommand(program)
  const command = program.commands.find((c) => c.name() === side)!
  return new Set(command.options.map((o) => o.long).filter((l): l is string => l !== undefined))
}

function typeOf(o: OptionInfo): string {
  switch (o.kind) {
    case 'boolean':
      return 'boolean'
    case 'enum':
      return o.values!.map((v) => `\`${v}\``).join(' \\| ')
    case 'number':
      return `${o.integer ? 'integer' : 'number'}${o.min !== undefined && o.max !== undefined ? ` ${o.min}–${o.max}` : ''}`
    default:
      return 'string'
  }
}

function defaultOf(o: OptionInfo): string {
  if (o.defaultValue !== undefined) return o.defaultValue === '' ? '`""`' : `\`${String(o.defaultValue)}\``
  return o.required ? 'required' : '—'
}

/** `name → description` from the rows of one side's table in a document. */
export function descriptionsIn(doc: string, side: ConfigSide): Map<string, string> {
  const out = new Map<string, string>()
  const start = doc.indexOf(BEGIN(side))
  const end = doc.indexOf(END(side))
  if (start < 0 || end < start) return out
  for (const line of doc.slice(start, end).split('\n')) {
    const m = /^\| `([A-Za-z0-9]+)` \|.*\| ([^|]*) \|$/.exec(line)
    if (m !== null) out.set(m[1]!, m[2]!.trim())
  }
  return out
}

export function optionTable(side: ConfigSide, descriptions: Map<string, string>): string {
  const flags = flagsOf(side)
  const rows = optionsOfSide(side).map((o) => {
    const flag = flags.has(flagOf(o.name)) ? `\`${flagOf(o.name)}\`` : '—'
    return `| \`${o.name}\` | ${typeOf(o)} | ${defaultOf(o)} | ${o.unit ?? ''} | \`${o.env}\` | ${flag} | ${descriptions.get(o.name) ?? ''} |`
  })
  return `${BEGIN(side)}\n${HEADER}\n${rows.join('\n')}\n${END(side)}`
}

/** The document with both tables regenerated; missing markers are an error, not a silent append. */
export function withOptionTables(doc: string): string {
  let out = doc
  for (const side of CONFIG_SIDES) {
    const descriptions = descriptionsIn(out, side)
    const start = out.indexOf(BEGIN(side))
    const end = out.indexOf(END(side))
    if (start < 0 || end < start) throw new Error(`docs/configuration.md lacks the ${side} table markers`)
    out = out.slice(0, start) + optionTable(side, descriptions) + out.slice(end + END(side).length)
  }
  return out
}

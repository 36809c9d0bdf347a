import type { z } from 'zod'

/** What a config schema says about one option, read from the zod schema itself. */
export interface OptionInfo {
  name: string
  kind: 'string' | 'number' | 'boolean' | 'enum'
  integer: boolean
  /** undefined when the option has no default (optional or required) */
  defaultValue: string | number | boolean | undefined
  required: boolean
  min: number | undefined
  max: number | undefined
  /** the allowed values of an enum option */
  values: readonly string[] | undefined
  /** read from the name, where the house style puts units: …Ms, …Bytes, …BytesPerSecond */
  unit: string | undefined
  /** the environment variable that sets it: APPTUNNEL_<UPPER_SNAKE> */
  env: string
}

interface ZodDefLike {
  type: string
  innerType?: ZodLike
  defaultValue?: unknown
  entries?: Record<string, string>
  shape?: Record<string, ZodLike>
}
interface ZodLike {
  def: ZodDefLike
  minValue?: number | null
  maxValue?: number | null
  isInt?: boolean
  options?: readonly string[]
}

/**
 * What a person reads about one option, kept beside its schema in a table keyed by option name
 * (OptionDocs): docs/configuration.md and `--help` are generated from it.
 */
export interface OptionDoc {
  /** one line of Markdown; an option's name in backticks (`dataDir`) is shown as its flag in --help */
  description: string
  /** false: no flag, the option is set in a file or the environment only; otherwise its flag is the one flagOf derives */
  flag?: false
  /** what --help calls the flag's value where neither the kind nor the name's last word says it (`url` for `database`) */
  value?: string
}

/** One OptionDoc for each field of a schema's shape: a missing or an unknown name is a type error. */
export type OptionDocs<Shape> = { readonly [K in keyof Shape]-?: OptionDoc }

/** An option as the schema defines it and its table describes it. */
export interface DocumentedOption extends OptionInfo {
  description: string
  flag: boolean
  value: string | undefined
}

/** The object shape of a config schema: a `.strict()` object, possibly with cross-field refinements. */
export function schemaShape(schema: z.ZodType): Record<string, ZodLike> {
  const shape = (schema as unknown as { shape?: Record<string, ZodLike> }).shape
  if (shape === undefined) throw new Error('a config schema must be a zod object')
  return shape
}

export function envVarName(option: string): string {
  return `APPTUNNEL_${option.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()}`
}

function unitOf(name: string): string | undefined {
  if (name.endsWith('BytesPerSecond')) return 'bytes/s'
  if (name.endsWith('Ms')) return 'ms'
  if (name.endsWith('Bytes')) return 'bytes'
  return undefined
}

/** Every option of a config schema, in the schema's order. */
export function optionsOf(schema: z.ZodType): OptionInfo[] {
  return Object.entries(schemaShape(schema)).map(([name, field]) => describeOption(name, field))
}

/** Every option of a config schema with its description, in the schema's order. */
export function documentedOptionsOf(schema: z.ZodType, docs: Readonly<Record<string, OptionDoc>>): DocumentedOption[] {
  return optionsOf(schema).map((o) => {
    const doc = docs[o.name]
    // The tables are typed against their schema; this catches a schema read with another's table.
    if (doc === undefined) throw new Error(`option ${o.name} has no description`)
    return { ...o, description: doc.description, flag: doc.flag !== false, value: doc.value }
  })
}

function describeOption(name: string, field: ZodLike): OptionInfo {
  let inner = field
  let defaultValue: unknown
  let required = true
  for (;;) {
    if (inner.def.type === 'default') {
      defaultValue = inner.def.defaultValue
      required = false
    } else if (inner.def.type === 'optional') {
      required = false
    } else break
    inner = inner.def.innerType!
  }
  const type = inner.def.type
  const kind = type === 'number' || type === 'boolean' || type === 'enum' ? type : 'string'
  return {
    name,
    kind,
    integer: kind === 'number' && inner.isInt === true,
    defaultValue: defaultValue as OptionInfo['defaultValue'],
    required,
    min: kind === 'number' ? (inner.minValue ?? undefined) : undefined,
    max: kind === 'number' ? (inner.maxValue ?? undefined) : undefined,
    values: kind === 'enum' ? inner.options : undefined,
    unit: kind === 'number' ? unitOf(name) : undefined,
    env: envVarName(name),
  }
}

/** "an integer from 1 to 86400000 ms", "one of: a, b", "true or false": what a value may be. */
export function allowedValues(o: OptionInfo): string {
  switch (o.kind) {
    case 'boolean':
      return 'true or false'
    case 'enum':
      return `one of: ${o.values!.join(', ')}`
    case 'number': {
      const range = o.min !== undefined && o.max !== undefined ? ` from ${o.min} to ${o.max}` : o.min !== undefined ? ` of at least ${o.min}` : ''
      return `${o.integer ? 'an integer' : 'a number'}${range}${o.unit === undefined ? '' : ` ${o.unit}`}`
    }
    default:
      return 'a string'
  }
}

function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!
    prev[0] = i
    for (let j = 1; j <= b.length; j++) {
      const next = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1))
      diag = prev[j]!
      prev[j] = next
    }
  }
  return prev[b.length]!
}

/**
 * The known name closest to a mistyped one, or undefined when nothing is close. Case is ignored,
 * so `ingress_listen`-style spellings find their camelCase option too.
 */
export function nearestName(name: string, known: Iterable<string>): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[_-]/g, '')
  let best: string | undefined
  let bestDistance = Infinity
  for (const k of known) {
    const d = editDistance(norm(name), norm(k))
    if (d < bestDistance) [best, bestDistance] = [k, d]
  }
  // A third of the name: catches dropped, doubled and swapped letters without suggesting nonsense.
  return bestDistance <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined
}

import type { z } from 'zod'
import { TunnelError } from '../errors/index.ts'
import { allowedValues, nearestName, optionsOf, type OptionInfo } from './config-options.ts'
import { parseListenAddress } from './listen-address.ts'

/** A duration option in milliseconds: a positive integer up to a day. */
export function durationMs(zod: typeof z, defaultMs: number) {
  return zod.number().int().min(1).max(24 * 3600_000).default(defaultMs)
}

/**
 * A HOST:PORT option, checked with the schema so a bad address is reported with every other problem.
 * `dialed`: the address is one to connect to, where port 0 means nothing (a listener may bind it).
 */
export function listenAddressString(zod: typeof z, use: 'listen' | 'dialed' = 'listen') {
  return zod.string().superRefine((value, ctx) => {
    let port: number
    try {
      port = parseListenAddress(value, '').port
    } catch {
      ctx.addIssue({ code: 'custom', message: `"${value}" is not HOST:PORT (e.g. 127.0.0.1:8443, port 0-65535)` })
      return
    }
    if (use === 'dialed' && port === 0) ctx.addIssue({ code: 'custom', message: 'the port must not be 0' })
  })
}

/**
 * Checks across options, run by zod even when single options are already wrong, so a file's
 * problems come out in one list. zod skips an object's refinements once a field has failed unless
 * told otherwise; the check therefore gets values that may be of the wrong type, and must look at
 * each one's type before it relies on it.
 */
export function withCrossFieldChecks<S extends z.ZodType>(schema: S, check: (values: Readonly<Record<string, unknown>>) => ConfigIssue[]): S {
  return schema.superRefine(
    (value, ctx) => {
      if (typeof value !== 'object' || value === null) return
      for (const i of check(value as Record<string, unknown>)) ctx.addIssue({ code: 'custom', message: i.message, path: [i.field] })
    },
    { when: () => true },
  ) as unknown as S
}

/** One configuration problem: the option it is about ("(config)" when none) and what is wrong. */
export interface ConfigIssue {
  field: string
  message: string
}

/**
 * Validates a process's options once, at the edge. Every problem is reported at once, each with
 * the field that has it, in one TUN_ERR_CONFIG_INVALID; `details.issues` lists them one by one.
 */
export function validateConfig<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
  const parsed = schema.safeParse(input)
  if (parsed.success) return parsed.data
  const options = new Map(optionsOf(schema).map((o) => [o.name, o]))
  const values = typeof input === 'object' && input !== null ? (input as Record<string, unknown>) : {}
  const issues = parsed.error.issues.flatMap((i) => describeIssue(i, options, values))
  throw new TunnelError('TUN_ERR_CONFIG_INVALID', `invalid ${what} configuration: ${issues.map((i) => `${i.field}: ${i.message}`).join('; ')}`, { details: { issues } })
}

function shown(value: unknown): string {
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'a list'
  if (typeof value === 'object') return 'a mapping'
  return String(value)
}

/** zod's issue, reworded to say what was given and what is allowed (range and unit, enum values, nearest name). */
function describeIssue(issue: z.core.$ZodIssue, options: Map<string, OptionInfo>, values: Record<string, unknown>): ConfigIssue[] {
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => {
      const near = nearestName(key, options.keys())
      return { field: key, message: `unknown option${near === undefined ? '' : `; did you mean "${near}"?`}` }
    })
  }
  const field = issue.path.map(String).join('.') || '(config)'
  const option = options.get(String(issue.path[0]))
  if (option === undefined || issue.path.length !== 1) return [{ field, message: issue.message }]
  const value = values[option.name]
  switch (issue.code) {
    case 'invalid_type':
      if (value === undefined) return [{ field, message: `required: ${allowedValues(option)}` }]
      return [{ field, message: `expected ${allowedValues(option)}, got ${shown(value)}` }]
    case 'too_small':
    case 'too_big':
      if (option.kind === 'number') return [{ field, message: `${String(value)} is out of range: allowed is ${allowedValues(option)}` }]
      if (issue.code === 'too_small' && issue.minimum === 1) return [{ field, message: 'must not be empty' }]
      return [{ field, message: `${issue.code === 'too_small' ? 'at least' : 'at most'} ${String(issue.code === 'too_small' ? issue.minimum : issue.maximum)} characters` }]
    case 'invalid_value':
      return [{ field, message: `${JSON.stringify(value)} is not allowed: ${allowedValues(option)}` }]
    case 'invalid_format':
      return [{ field, message: `${JSON.stringify(value)} is not valid: ${issue.message === 'Invalid URL' ? 'expected a URL' : issue.message}` }]
    default:
      return [{ field, message: issue.message }]
  }
}

/**
 * The problems a configuration error carries. Checks made after the schema (listen ports, fields
 * that need each other) throw "field: problem", or "invalid … configuration: " and such parts joined
 * by "; ", which is read back here so every problem still reaches its own line.
 */
export function configIssuesOf(err: TunnelError): ConfigIssue[] {
  const listed = err.details['issues']
  if (Array.isArray(listed)) return listed as ConfigIssue[]
  // Only a combined message ("invalid … configuration: a; b") is split: a single one may contain "; ".
  const combined = /^invalid \w+ configuration: (.*)$/s.exec(err.message)
  const parts = combined === null ? [err.message] : combined[1]!.split('; ')
  return parts.map((part) => {
    const m = /^([A-Za-z][A-Za-z0-9.]*): (.*)$/s.exec(part)
    return m === null ? { field: '(config)', message: part } : { field: m[1]!, message: m[2]! }
  })
}

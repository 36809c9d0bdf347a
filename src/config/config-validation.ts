import type { z } from 'zod'
import { TunnelError } from '../errors/index.ts'

/** A duration option in milliseconds: a positive integer up to a day. */
export function durationMs(zod: typeof z, defaultMs: number) {
  return zod.number().int().min(1).max(24 * 3600_000).default(defaultMs)
}

/**
 * Validates a process's options once, at the edge. Every problem is reported at once, each with
 * the field that has it, in one TUN_ERR_CONFIG_INVALID.
 */
export function validateConfig<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
  const parsed = schema.safeParse(input)
  if (parsed.success) return parsed.data
  const lines = parsed.error.issues.map((i) => `${i.path.join('.') || '(config)'}: ${i.message}`)
  throw new TunnelError('TUN_ERR_CONFIG_INVALID', `invalid ${what} configuration: ${lines.join('; ')}`)
}

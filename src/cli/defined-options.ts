/** Keeps only the options a person actually gave, so the config schema's defaults apply to the rest. */
export function definedOptions(options: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(options)) if (v !== undefined) out[k] = v
  return out
}

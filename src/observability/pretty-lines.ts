/** Fields every entry has, shown in the line's prefix rather than as key=value. */
const PREFIX_FIELDS = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'name', 'component'])
const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' }
const LEVEL_COLORS: Record<number, string> = { 10: '\u001b[90m', 20: '\u001b[36m', 30: '\u001b[32m', 40: '\u001b[33m', 50: '\u001b[31m', 60: '\u001b[35m' }
const RESET = '\u001b[0m'
const DIM = '\u001b[2m'

/**
 * Whether colour may be written to `stream`: only to a terminal, and never when NO_COLOR is set to
 * anything but the empty string (no-color.org). Logs piped to a file or a collector stay plain.
 */
export function colorAllowed(stream: { isTTY?: boolean | undefined }, env: NodeJS.ProcessEnv = process.env): boolean {
  const noColor = env['NO_COLOR']
  return stream.isTTY === true && (noColor === undefined || noColor === '')
}

/**
 * A pino destination that turns each JSON line into one line a person reads on a terminal:
 * `12:04:05.123 INFO  ingress  message  key=value …`. It formats what pino already serialised and
 * redacted, so nothing can appear here that the JSON would not show.
 */
export function prettyLines(out: { write(s: string): unknown }, options: { color: boolean }): { write(line: string): void } {
  return {
    write(line: string): void {
      let entry: Record<string, unknown>
      try {
        entry = JSON.parse(line) as Record<string, unknown>
      } catch {
        out.write(line)
        return
      }
      out.write(formatEntry(entry, options.color) + '\n')
    },
  }
}

export function formatEntry(entry: Record<string, unknown>, color: boolean): string {
  const level = typeof entry['level'] === 'number' ? entry['level'] : 30
  const time = typeof entry['time'] === 'number' ? new Date(entry['time']).toISOString().slice(11, 23) : ''
  const name = (LEVEL_NAMES[level] ?? String(level)).padEnd(5)
  const component = typeof entry['component'] === 'string' ? entry['component'] : ''
  const fields: string[] = []
  for (const [k, v] of Object.entries(entry)) {
    if (PREFIX_FIELDS.has(k)) continue
    fields.push(`${k}=${formatValue(v)}`)
  }
  const msg = typeof entry['msg'] === 'string' ? entry['msg'] : ''
  const parts = color
    ? [`${DIM}${time}${RESET}`, `${LEVEL_COLORS[level] ?? ''}${name}${RESET}`, component === '' ? '' : `${DIM}${component}${RESET}`, msg, fields.length === 0 ? '' : `${DIM}${fields.join(' ')}${RESET}`]
    : [time, name, component, msg, fields.join(' ')]
  return parts.filter((p) => p !== '').join('  ')
}

function formatValue(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v)
  if (typeof v === 'object' && v !== null && 'message' in v && 'type' in v) {
    // a serialised error: its message (and stack on the next lines would break one-line entries)
    return JSON.stringify(`${String((v as { type: unknown }).type)}: ${String((v as { message: unknown }).message)}`)
  }
  return JSON.stringify(v)
}

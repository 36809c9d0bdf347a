import { readFile, writeFile } from 'node:fs/promises'
import type { Spread } from './stats.ts'

export interface Row {
  figure: string
  unit: string
  direct?: Spread
  tunnel?: Spread
  /** the same figure through `ssh -R` in the same rounds: printed with the tunnel's ratio to it */
  ssh?: Spread
  /** set when the row compares with direct: the ratio is printed beside the tunnel figure */
  higherIsBetter?: boolean
  note?: string
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return '–'
  const a = Math.abs(n)
  if (a >= 1000) return Math.round(n).toLocaleString('en-US')
  if (a >= 100) return n.toFixed(0)
  if (a >= 10) return n.toFixed(1)
  if (a >= 1) return n.toFixed(2)
  return n.toFixed(3)
}

function cell(s: Spread | undefined): string {
  if (s === undefined) return ''
  if (!Number.isFinite(s.min) || s.min === s.max) return fmt(s.median)
  return `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})`
}

function ratio(r: Row): string {
  if (r.direct === undefined || r.tunnel === undefined || r.higherIsBetter === undefined) return ''
  return `${(r.tunnel.median / r.direct.median).toFixed(2)} ×`
}

function sshRatio(r: Row): string {
  if (r.ssh === undefined || r.tunnel === undefined) return ''
  return `${(r.tunnel.median / r.ssh.median).toFixed(2)} ×`
}

const HEADER = ['figure', 'unit', 'direct', 'tunnel', 'tunnel / direct']
const SSH_HEADER = ['ssh -R', 'tunnel / ssh']

/**
 * Rows as [figure, unit, direct, tunnel, ratio] and, when any row has an ssh figure, [ssh, ratio]:
 * medians with min–max over the rounds.
 */
function cells(rows: Row[]): string[][] {
  const withSsh = rows.some((r) => r.ssh !== undefined)
  return [
    withSsh ? [...HEADER, ...SSH_HEADER] : HEADER,
    ...rows.map((r) => [r.figure, r.unit, cell(r.direct), r.note ?? cell(r.tunnel), ratio(r), ...(withSsh ? [cell(r.ssh), sshRatio(r)] : [])]),
  ]
}

export function renderTable(rows: Row[]): string {
  const all = cells(rows)
  const widths = all[0]!.map((_, i) => Math.max(...all.map((r) => r[i]!.length)))
  const line = (r: string[]): string => r.map((c, i) => (i >= 2 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ')
  return [line(all[0]!), widths.map((w) => '─'.repeat(w)).join('  '), ...all.slice(1).map(line)].join('\n')
}

export function renderMarkdownTable(rows: Row[]): string {
  const [header, ...body] = cells(rows)
  return [`| ${header!.join(' | ')} |`, `|${header!.map((_, i) => (i >= 2 ? '---:' : '---')).join('|')}|`, ...body.map((r) => `| ${r.join(' | ')} |`)].join('\n')
}

const START = '<!-- bench:latest:start -->'
const END = '<!-- bench:latest:end -->'
const DOC = new URL('../../docs/performance.md', import.meta.url).pathname

/**
 * Replaces the generated "latest run" block of docs/performance.md; the hand-written analysis
 * around it (profile findings, history, decisions) is kept.
 */
export async function writePerformanceDoc(run: { date: string; command: string; machine: string; rows: Row[]; profile: string }): Promise<string> {
  const block = [
    START,
    `Run on ${run.date} with \`${run.command}\` on ${run.machine}. Medians of the rounds, min–max in brackets; everything on 127.0.0.1, the load generator and all processes sharing the cores.`,
    '',
    renderMarkdownTable(run.rows),
    ...(run.profile === '' ? [] : ['', '```', run.profile.trim(), '```']),
    END,
  ].join('\n')
  let doc: string
  try {
    doc = await readFile(DOC, 'utf8')
  } catch {
    doc = `# Performance\n\n## Latest run\n\n${START}\n${END}\n`
  }
  const s = doc.indexOf(START)
  const e = doc.indexOf(END)
  if (s < 0 || e < s) throw new Error(`${DOC} has no ${START} … ${END} block to replace`)
  await writeFile(DOC, doc.slice(0, s) + block + doc.slice(e + END.length))
  return 'docs/performance.md'
}

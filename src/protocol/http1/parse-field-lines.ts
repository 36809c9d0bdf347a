import type { FramerSide } from './framing-error.ts'
import { describeByte, framingError } from './framing-error.ts'
import type { FieldNameSet } from './field-name-set.ts'
import { TOKEN_CHARS, equalsIgnoreCaseAt } from './token-chars.ts'

const CR = 13
const LF = 10
const HTAB = 9
const SP = 32
const COLON = 58
const COMMA = 44
const DEL = 0x7f

export const CONNECTION_CLOSE = 1
export const CONNECTION_KEEP_ALIVE = 2
export const CONNECTION_UPGRADE = 4

const NO_FIELDS: Array<[name: string, value: string]> = []

/** The field lines of a head plus what framing decisions need, gathered in the same pass. */
export interface FieldSummary {
  /** every field line in order; empty when the caller did not ask for them (see parseFieldLines) */
  headers: Array<[name: string, value: string]>
  /** Every Content-Length field value in order; undefined when there is none (the common case allocates nothing). */
  contentLengths: string[] | undefined
  transferEncodings: string[] | undefined
  hostCount: number
  host: string | undefined
  /** CONNECTION_* bits from every Connection field. */
  connection: number
  hasUpgradeField: boolean
  expect: string | undefined
  /** A field named in the caller's `flag` set is present (false without a set). */
  flagged: boolean
}

/**
 * Parses field lines from s[p] up to and including the blank line. `b` holds the same characters as
 * bytes, b[off + i] === s.charCodeAt(i): validation walks the bytes (about twice as fast as
 * charCodeAt) and names and values are sliced from the string. The head scanner has already proved
 * every LF is preceded by CR and the head ends in a blank line, so the loops here stop at CR.
 *
 * With `collect` false only the fields framing needs are sliced, and `headers` stays empty: a relay
 * that passes a response head on as received needs no list of its fields, and building one was
 * the largest allocation of a small request (fieldList() makes the same list later, on demand).
 * `flag`: names whose presence the caller wants to know of (`flagged`), found in the same pass.
 */
export function parseFieldLines(b: Buffer, off: number, s: string, p: number, side: FramerSide, collect = true, flag?: FieldNameSet): FieldSummary {
  const out: FieldSummary = {
    // Not collecting, nothing is pushed: one empty list serves every such head.
    headers: collect ? [] : NO_FIELDS,
    contentLengths: undefined,
    transferEncodings: undefined,
    hostCount: 0,
    host: undefined,
    connection: 0,
    hasUpgradeField: false,
    expect: undefined,
    flagged: false,
  }
  let q = off + p
  let line = 0
  for (;;) {
    let c = b[q]!
    line++
    if (c === CR) {
      if (b[q + 1] !== LF) throw bad(side, `bare CR in header line ${line}`)
      return out
    }
    if (c === SP || c === HTAB) {
      // obs-fold (RFC 9112 §5.2); also whitespace before the first field, which §2.2 says to reject.
      throw bad(side, `obs-fold (line starting with whitespace) in header line ${line}`)
    }
    const nameStart = q
    while (TOKEN_CHARS[c] === 1) c = b[++q]!
    if (c !== COLON) throw badFieldName(side, b, q, c, line)
    if (q === nameStart) throw bad(side, `empty field name in header line ${line}`)
    const nameEnd = q
    c = b[++q]!
    while (c === SP || c === HTAB) c = b[++q]!
    const valueStart = q
    let valueEnd = q
    while (c !== CR) {
      if (c > SP && c !== DEL) valueEnd = q + 1
      else if (c !== SP && c !== HTAB) throw bad(side, `invalid character ${describeByte(c)} in field value of header line ${line}`)
      c = b[++q]!
    }
    if (b[q + 1] !== LF) throw bad(side, `bare CR in header line ${line}`)
    q += 2
    let value: string | undefined
    if (collect) {
      value = s.slice(valueStart - off, valueEnd - off)
      out.headers.push([s.slice(nameStart - off, nameEnd - off), value])
    }
    const n = nameStart - off
    if (flag !== undefined && !out.flagged && flag.hasAt(s, n, nameEnd - nameStart)) out.flagged = true
    // Dispatch on length first: most fields are none of these and cost one switch.
    switch (nameEnd - nameStart) {
      case 4:
        if (equalsIgnoreCaseAt(s, n, 'host')) {
          out.hostCount++
          out.host = value ?? s.slice(valueStart - off, valueEnd - off)
        }
        break
      case 6:
        if (equalsIgnoreCaseAt(s, n, 'expect')) out.expect = value ?? s.slice(valueStart - off, valueEnd - off)
        break
      case 7:
        if (equalsIgnoreCaseAt(s, n, 'upgrade')) out.hasUpgradeField = true
        break
      case 10:
        if (equalsIgnoreCaseAt(s, n, 'connection')) out.connection |= connectionFlags(value ?? s.slice(valueStart - off, valueEnd - off))
        break
      case 14:
        if (equalsIgnoreCaseAt(s, n, 'content-length')) (out.contentLengths ??= []).push(value ?? s.slice(valueStart - off, valueEnd - off))
        break
      case 17:
        if (equalsIgnoreCaseAt(s, n, 'transfer-encoding')) (out.transferEncodings ??= []).push(value ?? s.slice(valueStart - off, valueEnd - off))
        break
    }
  }
}

/**
 * The field lines from s[p] to the blank line as [name, value] pairs, values without the
 * whitespace around them: what parseFieldLines() collects, for lines it has already validated.
 */
export function fieldList(s: string, p: number): Array<[name: string, value: string]> {
  const out: Array<[string, string]> = []
  for (;;) {
    const eol = s.indexOf('\r\n', p)
    if (eol === p) return out
    const colon = s.indexOf(':', p)
    let start = colon + 1
    let end = eol
    while (start < end && isOws(s.charCodeAt(start))) start++
    while (end > start && isOws(s.charCodeAt(end - 1))) end--
    out.push([s.slice(p, colon), s.slice(start, end)])
    p = eol + 2
  }
}

/** CONNECTION_* bits of one Connection value: a comma list of case-insensitive tokens. */
export function connectionFlags(value: string): number {
  let flags = 0
  const n = value.length
  let i = 0
  while (i <= n) {
    let start = i
    while (i < n && value.charCodeAt(i) !== COMMA) i++
    let end = i
    while (start < end && isOws(value.charCodeAt(start))) start++
    while (end > start && isOws(value.charCodeAt(end - 1))) end--
    switch (end - start) {
      case 5:
        if (equalsIgnoreCaseAt(value, start, 'close')) flags |= CONNECTION_CLOSE
        break
      case 7:
        if (equalsIgnoreCaseAt(value, start, 'upgrade')) flags |= CONNECTION_UPGRADE
        break
      case 10:
        if (equalsIgnoreCaseAt(value, start, 'keep-alive')) flags |= CONNECTION_KEEP_ALIVE
        break
    }
    i++
  }
  return flags
}

/** Splits a comma list (RFC 9110 §5.6.1), trimming OWS and dropping empty elements. */
export function splitList(value: string): string[] {
  const items: string[] = []
  for (const raw of value.split(',')) {
    const item = raw.replace(/^[ \t]+|[ \t]+$/g, '')
    if (item !== '') items.push(item)
  }
  return items
}

function isOws(c: number): boolean {
  return c === SP || c === HTAB
}

function bad(side: FramerSide, message: string): Error {
  return framingError(side, 'TUN_ERR_HTTP_BAD_REQUEST', message)
}

function badFieldName(side: FramerSide, b: Buffer, q: number, c: number, line: number): Error {
  if (c === SP || c === HTAB) {
    let r = q
    while (isOws(b[r]!)) r++
    if (b[r] === COLON) return bad(side, `whitespace between field name and colon in header line ${line}`)
    return bad(side, `whitespace inside field name in header line ${line}`)
  }
  if (c === CR) return bad(side, b[q + 1] === LF ? `missing colon in header line ${line}` : `bare CR in header line ${line}`)
  return bad(side, `invalid character ${describeByte(c)} in field name of header line ${line}`)
}

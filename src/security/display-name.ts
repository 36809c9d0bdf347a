/**
 * Names an administrator types that other people are shown later (tunnel, linked product and API
 * token names: consoles, `tunnel list`, the audit log). A character that draws nothing or turns
 * the text around (U+202E RIGHT-TO-LEFT OVERRIDE, U+200B ZERO WIDTH SPACE) lets one name pass for
 * another, "\u202Eevil" for "live"; a control character can rewrite a terminal. Such names are
 * refused when entered, never cleaned up silently, so what is stored is what was typed
 * (docs/decisions.md, section 40).
 *
 * Refused: Unicode categories Cc (controls), Cf (format: zero-width characters, joiners, every
 * bidirectional control U+061C, U+200E/F, U+202A–E, U+2066–9, the BOM U+FEFF, tag characters),
 * Zl and Zp (line and paragraph separators), and Cs (a lone surrogate, which is not text).
 */
const REFUSED = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u

const BIDI = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u

export interface DisplayNameProblem {
  /** "U+202E" */
  character: string
  /** 1-based, in characters (code points) of the name as given (before surrounding spaces are trimmed) */
  position: number
  /** "U+202E (a bidirectional control character) at position 1" */
  message: string
}

function kindOf(ch: string): string {
  if (BIDI.test(ch)) return 'a bidirectional control character'
  if (/\p{Cc}/u.test(ch)) return 'a control character'
  if (/[\p{Zl}\p{Zp}]/u.test(ch)) return 'a line or paragraph separator'
  if (/\p{Cs}/u.test(ch)) return 'a lone surrogate'
  return 'an invisible format character'
}

/** The first character a shown name must not hold, or undefined when there is none. */
export function displayNameProblem(name: string): DisplayNameProblem | undefined {
  let position = 0
  for (const ch of name) {
    position++
    if (!REFUSED.test(ch)) continue
    const character = `U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`
    return { character, position, message: `${character} (${kindOf(ch)}) at position ${position}` }
  }
  return undefined
}

/** The sentence an error about `what` ("tunnel name") says, with the problem's details for scripts. */
export function displayNameRefusal(what: string, p: DisplayNameProblem): { message: string; details: { character: string; position: number } } {
  return {
    message: `${what} contains ${p.message}: control, invisible format and bidirectional characters are not allowed in names shown to other people`,
    details: { character: p.character, position: p.position },
  }
}

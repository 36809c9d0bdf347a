import { equalsIgnoreCaseAt } from './token-chars.ts'

/**
 * A fixed set of field names, matched in any letter case where a name lies inside a head's text,
 * without slicing or lower-casing it: a field is compared only with the names of its length.
 * Names are lowercase letters, digits and '-' (what equalsIgnoreCaseAt folds correctly).
 */
export class FieldNameSet {
  readonly #byLength: Array<readonly string[] | undefined> = []

  constructor(names: Iterable<string>) {
    for (const name of names) {
      if (!/^[a-z0-9-]+$/.test(name)) throw new Error(`FieldNameSet: ${JSON.stringify(name)} is not a lowercase field name`)
      this.#byLength[name.length] = [...(this.#byLength[name.length] ?? []), name]
    }
  }

  /** s[start, start + length) is one of the names. */
  hasAt(s: string, start: number, length: number): boolean {
    const candidates = this.#byLength[length]
    if (candidates === undefined) return false
    for (let i = 0; i < candidates.length; i++) if (equalsIgnoreCaseAt(s, start, candidates[i]!)) return true
    return false
  }

  has(name: string): boolean {
    return this.hasAt(name, 0, name.length)
  }
}

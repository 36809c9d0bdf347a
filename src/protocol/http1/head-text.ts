import { fieldList } from './parse-field-lines.ts'

/**
 * A parsed head's text, with its field list read from it when first asked for. Request and
 * response heads keep what framing decided as fields of their own and extend this for the rest:
 * a relay passes most heads on as received and never asks for the list, which was most of what
 * parsing a head allocated. Nothing here is an own enumerable property, so a spread of a head keeps
 * only what framing decided.
 */
export abstract class HeadText {
  readonly #text: string
  readonly #fieldsAt: number
  #headers: Array<[name: string, value: string]> | undefined

  /** `fieldsAt`: where the first field line starts in `text`. */
  constructor(text: string, fieldsAt: number) {
    this.#text = text
    this.#fieldsAt = fieldsAt
  }

  /** The head as received and validated (latin1): the start line, the field lines, the blank line. */
  get text(): string {
    return this.#text
  }

  get headers(): Array<[name: string, value: string]> {
    return (this.#headers ??= fieldList(this.#text, this.#fieldsAt))
  }
}

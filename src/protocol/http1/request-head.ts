import type { BodyFraming } from './body-framing.ts'
import type { FieldNameSet } from './field-name-set.ts'

/** A parsed request head. `headers` is read from the head's text when first asked for. */
export interface RequestHead {
  readonly method: string
  readonly target: string
  readonly versionMinor: 0 | 1
  /** In the order and letter case received; values with surrounding whitespace trimmed, decoded as latin1. */
  readonly headers: Array<[name: string, value: string]>
  readonly body: BodyFraming
  readonly keepAlive: boolean
  /** HTTP/1.1, Connection lists `upgrade` and an Upgrade field is present (RFC 9110 §7.8 ignores Upgrade in 1.0). */
  readonly upgrade: boolean
  /** HTTP/1.1 with `Expect: 100-continue` (RFC 9110 §10.1.1 ignores it in 1.0). */
  readonly expectContinue: boolean
  readonly host: string | undefined
  /** The head as received and validated (latin1): the request line, the field lines, the blank line. */
  readonly text: string
  /** A field named in `names` is present: answered from the parse for the set the framer was given. */
  hasFieldIn(names: FieldNameSet): boolean
}

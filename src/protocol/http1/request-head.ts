import type { BodyFraming } from './body-framing.ts'

export interface RequestHead {
  method: string
  target: string
  versionMinor: 0 | 1
  /** In the order and letter case received; values with surrounding whitespace trimmed, decoded as latin1. */
  headers: Array<[name: string, value: string]>
  body: BodyFraming
  keepAlive: boolean
  /** HTTP/1.1, Connection lists `upgrade` and an Upgrade field is present (RFC 9110 §7.8 ignores Upgrade in 1.0). */
  upgrade: boolean
  /** HTTP/1.1 with `Expect: 100-continue` (RFC 9110 §10.1.1 ignores it in 1.0). */
  expectContinue: boolean
  host: string | undefined
}

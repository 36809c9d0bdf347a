import type { BodyFraming } from './body-framing.ts'

/** A parsed response head. `reason` and `headers` are read from the head's text when first asked for. */
export interface ResponseHead {
  readonly statusCode: number
  readonly reason: string
  readonly versionMinor: 0 | 1
  readonly headers: Array<[name: string, value: string]>
  readonly body: BodyFraming
  readonly keepAlive: boolean
}

import type { BodyFraming } from './body-framing.ts'

export interface ResponseHead {
  statusCode: number
  reason: string
  versionMinor: 0 | 1
  headers: Array<[name: string, value: string]>
  body: BodyFraming
  keepAlive: boolean
}

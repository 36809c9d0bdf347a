// HTTP/1.x message framing for the ingress hot path: strict on requests (anything two parsers
// could frame differently is refused), well-formed-framing-only on responses, zero-copy bodies.
export type { BodyFraming } from './body-framing.ts'
export type { Http1Limits } from './http1-limits.ts'
export { defaultHttp1Limits } from './http1-limits.ts'
export type { RequestHead } from './request-head.ts'
export type { ResponseHead } from './response-head.ts'
export type { RequestFramerCallbacks, RequestFramerState } from './request-framer.ts'
export { MAX_BYTES_AWAITING_UPGRADE, RequestFramer } from './request-framer.ts'
export type { ResponseFramerCallbacks, ResponseFramerState } from './response-framer.ts'
export { ResponseFramer } from './response-framer.ts'
export { serializeRequestHead } from './serialize-request-head.ts'
export { serializeErrorResponse } from './serialize-error-response.ts'
export { reasonPhrase } from './reason-phrase.ts'

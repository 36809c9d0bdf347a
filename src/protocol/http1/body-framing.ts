/** How the body of a message is delimited on the wire (RFC 9112 §6.3). */
export type BodyFraming =
  | { kind: 'none' }
  | { kind: 'length'; length: number }
  | { kind: 'chunked' }
  /** Responses only: the body runs until the upstream closes the connection. */
  | { kind: 'until-close' }

// Shared, frozen instances: the framers hand out one object per head and these kinds carry no data.
export const NO_BODY: BodyFraming = Object.freeze({ kind: 'none' })
export const CHUNKED_BODY: BodyFraming = Object.freeze({ kind: 'chunked' })
export const UNTIL_CLOSE_BODY: BodyFraming = Object.freeze({ kind: 'until-close' })

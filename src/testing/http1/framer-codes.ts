import type { ErrorCode } from '../../errors/index.ts'

/** Every code the request framer refuses with: what a caller's malformed bytes can produce. */
export const REQUEST_FRAMER_CODES: readonly ErrorCode[] = [
  'TUN_ERR_HTTP_BAD_REQUEST',
  'TUN_ERR_HTTP_AMBIGUOUS_FRAMING',
  'TUN_ERR_HTTP_HEADERS_TOO_LARGE',
  'TUN_ERR_HTTP_URI_TOO_LONG',
  'TUN_ERR_HTTP_NOT_IMPLEMENTED',
  'TUN_ERR_HTTP_VERSION',
]

/** The one code the response framer refuses an upstream's bytes with. */
export const RESPONSE_FRAMER_CODES: readonly ErrorCode[] = ['TUN_ERR_UPSTREAM_BAD_RESPONSE']

import type { SecureContextOptions } from 'node:tls'

/**
 * TLS 1.2 minimum and forward-secret suites only, on every listener and every dial. TLS 1.3 suites
 * are all forward-secret; for 1.2 only ECDHE with AEAD ciphers is offered.
 */
export const FORWARD_SECRET_TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':')

export const tlsPolicy = {
  minVersion: 'TLSv1.2',
  ciphers: FORWARD_SECRET_TLS12_CIPHERS,
  honorCipherOrder: true,
} as const satisfies SecureContextOptions

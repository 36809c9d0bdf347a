import { X509Certificate, createHash } from 'node:crypto'

/** base64url SHA-256 of the certificate's DER SubjectPublicKeyInfo (the HPKP-style pin). */
export function spkiPin(certificate: X509Certificate | Buffer | string): string {
  const cert = certificate instanceof X509Certificate ? certificate : new X509Certificate(certificate)
  const spki = cert.publicKey.export({ type: 'spki', format: 'der' })
  return createHash('sha256').update(spki).digest('base64url')
}

/**
 * Headers on every console answer. The CSP allows only our own files: no inline script or style,
 * so an injected string cannot run. Framing is refused (clickjacking of "Delete"), and no Referer
 * leaves a console page: the on-prem console's address carries a security key in its fragment until
 * the page clears it, and although fragments are never sent, nothing else about the URL should be.
 */
export const CONSOLE_SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=(), payment=()',
})

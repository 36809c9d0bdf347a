import { webcrypto } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

export interface CertificateFiles {
  certPath: string
  keyPath: string
  cert: string
  key: string
  /** true when the pair was generated here (the server then pins it into keys) */
  selfSigned: boolean
}

const CERT_FILE = 'server.crt'
const KEY_FILE = 'server.key'

/**
 * Loads the configured certificate, or the one generated earlier into the data directory, or
 * generates a self-signed ECDSA P-256 one (valid 10 years; agents pin it, so expiry is no safety
 * property here, and re-generating would orphan every issued key).
 */
export async function loadOrCreateCertificate(
  dataDir: string,
  configured: { certPath?: string | undefined; keyPath?: string | undefined },
  hostnames: readonly string[],
): Promise<CertificateFiles> {
  if (configured.certPath !== undefined && configured.keyPath !== undefined) {
    const [cert, key] = await Promise.all([readFile(configured.certPath, 'utf8'), readFile(configured.keyPath, 'utf8')])
    return { certPath: configured.certPath, keyPath: configured.keyPath, cert, key, selfSigned: false }
  }
  const certPath = join(dataDir, CERT_FILE)
  const keyPath = join(dataDir, KEY_FILE)
  try {
    const [cert, key] = await Promise.all([readFile(certPath, 'utf8'), readFile(keyPath, 'utf8')])
    return { certPath, keyPath, cert, key, selfSigned: true }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const { cert, key } = await generateSelfSigned(hostnames)
  await mkdir(dataDir, { recursive: true, mode: 0o700 })
  await writeFile(keyPath, key, { mode: 0o600, flag: 'wx' })
  await writeFile(certPath, cert, { mode: 0o644, flag: 'wx' })
  return { certPath, keyPath, cert, key, selfSigned: true }
}

export async function generateSelfSigned(hostnames: readonly string[]): Promise<{ cert: string; key: string }> {
  // Loaded only when a certificate is made (first start): the library costs ~20 MiB of RSS for
  // the life of the process otherwise.
  // @peculiar/x509 resolves its crypto provider through tsyringe, which needs this polyfill first.
  await import('reflect-metadata')
  const loaded = await import('@peculiar/x509')
  // A bundled CommonJS module may arrive with its exports only under `default`.
  const x509 = ('cryptoProvider' in loaded ? loaded : (loaded as { default: typeof loaded }).default) as typeof loaded
  x509.cryptoProvider.set(webcrypto as unknown as Crypto)
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' }
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])
  const names = new Set(['localhost', '127.0.0.1', '::1', ...hostnames])
  const sans = [...names].map((n) =>
    /^[\d.]+$/.test(n) || n.includes(':') ? { type: 'ip' as const, value: n } : { type: 'dns' as const, value: n },
  )
  const now = Date.now()
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: Buffer.from(webcrypto.getRandomValues(new Uint8Array(16))).toString('hex').replace(/^[89a-f]/, '1'),
    name: 'CN=apptunnel server',
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 10 * 365 * 24 * 3600_000),
    signingAlgorithm: alg,
    keys: keys as unknown as CryptoKeyPair,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(sans),
    ],
  })
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)
  const key = `-----BEGIN PRIVATE KEY-----\n${Buffer.from(pkcs8).toString('base64').replace(/.{64}/g, '$&\n')}\n-----END PRIVATE KEY-----\n`
  return { cert: cert.toString('pem') + '\n', key: key.replace(/\n\n/g, '\n') }
}

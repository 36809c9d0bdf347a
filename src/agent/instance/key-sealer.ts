import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { TunnelError } from '../../errors/index.ts'

const SEALED_PREFIX = 'enc:v1:'
const KEY_BYTES = 32
const IV_BYTES = 12
const TAG_BYTES = 16
// Binds a ciphertext to its purpose: a sealed key cannot be passed off as anything else.
const AAD = Buffer.from('apptunnel instance security key v1')

/**
 * Encrypts the instance's security key at rest (AES-256-GCM) with a key file each node holds
 * locally: someone who reads the instance database alone learns nothing usable. Stored form:
 * `enc:v1:<key id>:<iv>:<ciphertext+tag>` (base64url), the key id being the first 8 hex digits of
 * the SHA-256 of the file's key, so a node with another file says so instead of failing obscurely.
 */
export class KeySealer {
  readonly #key: Buffer
  readonly kid: string

  constructor(key: Buffer) {
    if (key.length !== KEY_BYTES) throw new TunnelError('TUN_ERR_CONFIG_INVALID', `a key encryption key is ${KEY_BYTES} bytes (got ${key.length})`)
    this.#key = key
    this.kid = createHash('sha256').update(key).digest('hex').slice(0, 8)
  }

  /** Reads a key file: 32 bytes in base64 or base64url on one line (what `key new-encryption-file` writes). */
  static async fromFile(path: string): Promise<KeySealer> {
    let text: string
    try {
      text = await readFile(path, 'utf8')
    } catch (err) {
      throw new TunnelError('TUN_ERR_CONFIG_INVALID', `keyEncryptionFile: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`)
    }
    const trimmed = text.trim()
    const key = /^[A-Za-z0-9+/_-]{43}=?$/.test(trimmed) ? Buffer.from(trimmed.replace(/\+/g, '-').replace(/\//g, '_').replace(/=$/, ''), 'base64url') : Buffer.alloc(0)
    if (key.length !== KEY_BYTES) {
      throw new TunnelError('TUN_ERR_CONFIG_INVALID', `keyEncryptionFile: ${path} must hold ${KEY_BYTES} bytes in base64 on one line (make one with apptunnel key new-encryption-file FILE)`)
    }
    return new KeySealer(key)
  }

  /** Writes a fresh key file readable by its owner only; refuses to overwrite one. */
  static async writeNewFile(path: string): Promise<KeySealer> {
    const key = randomBytes(KEY_BYTES)
    try {
      await writeFile(path, key.toString('base64') + '\n', { mode: 0o600, flag: 'wx' })
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      throw new TunnelError('TUN_ERR_CLI_USAGE', code === 'EEXIST' ? `${path} exists already: a key file is never overwritten (the keys sealed with it would be lost)` : `cannot write ${path}: ${code ?? String(err)}`)
    }
    return new KeySealer(key)
  }

  static isSealed(stored: string): boolean {
    return stored.startsWith(SEALED_PREFIX)
  }

  /** The key id a sealed value was made with, or undefined for a plain one. */
  static kidOf(stored: string): string | undefined {
    return KeySealer.isSealed(stored) ? stored.slice(SEALED_PREFIX.length).split(':')[0] : undefined
  }

  seal(plain: string): string {
    const iv = randomBytes(IV_BYTES)
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv)
    cipher.setAAD(AAD)
    const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final(), cipher.getAuthTag()])
    return `${SEALED_PREFIX}${this.kid}:${iv.toString('base64url')}:${body.toString('base64url')}`
  }

  /** The plain key of a sealed value (a plain value passes through). */
  open(stored: string): string {
    if (!KeySealer.isSealed(stored)) return stored
    const [kid, ivText, bodyText] = stored.slice(SEALED_PREFIX.length).split(':')
    if (kid !== this.kid) {
      throw new TunnelError('TUN_ERR_KEY_SEALED', `the stored security key was encrypted with key file ${kid ?? '?'}, this node has key file ${this.kid}: give every node the same --key-encryption-file`)
    }
    const iv = Buffer.from(ivText ?? '', 'base64url')
    const body = Buffer.from(bodyText ?? '', 'base64url')
    if (iv.length !== IV_BYTES || body.length <= TAG_BYTES) throw new TunnelError('TUN_ERR_KEY_SEALED', 'the stored security key is damaged: add it again')
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#key, iv)
      decipher.setAAD(AAD)
      decipher.setAuthTag(body.subarray(body.length - TAG_BYTES))
      return Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_BYTES)), decipher.final()]).toString('utf8')
    } catch {
      throw new TunnelError('TUN_ERR_KEY_SEALED', 'the stored security key does not decrypt with this key file (damaged, or another file with the same id): add it again')
    }
  }
}

/** Opens a stored key with the node's sealer, saying clearly what is missing when it cannot. */
export function openStoredKey(stored: string, sealer: KeySealer | undefined): string {
  if (!KeySealer.isSealed(stored)) return stored
  if (sealer === undefined) {
    throw new TunnelError('TUN_ERR_KEY_SEALED', `the stored security key is encrypted (key file ${KeySealer.kidOf(stored)}) and this node has no --key-encryption-file`)
  }
  return sealer.open(stored)
}

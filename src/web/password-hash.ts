import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto'

/** scrypt cost parameters; stored with every hash so a later raise does not orphan old hashes. */
export interface ScryptParams {
  /** CPU/memory cost, a power of two */
  N: number
  /** block size */
  r: number
  /** parallelism */
  p: number
}

/**
 * N=2^15, r=8: 32 MiB and roughly 50-100 ms per attempt on a server core — cheap for one sign-in,
 * expensive for a guesser holding a stolen table (OWASP's scrypt floor is N=2^17 at r=8 for 128 MiB;
 * we stay at 32 MiB because two nodes of a small cluster may verify at once on a 2-core host).
 */
export const DEFAULT_SCRYPT_PARAMS: Readonly<ScryptParams> = Object.freeze({ N: 2 ** 15, r: 8, p: 1 })

const SALT_BYTES = 16
const HASH_BYTES = 32
const PREFIX = 'scrypt'
const MAX_PASSWORD_BYTES = 1024

function derive(password: string, salt: Buffer, params: ScryptParams): Promise<Buffer> {
  // scrypt needs 128·N·r bytes; Node refuses above maxmem (32 MiB by default), so allow twice that.
  const options: ScryptOptions = { N: params.N, r: params.r, p: params.p, maxmem: 256 * params.N * params.r }
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFC'), salt, HASH_BYTES, options, (err, key) => (err === null ? resolve(key) : reject(err)))
  })
}

/** "scrypt$N$r$p$<salt b64url>$<hash b64url>" with a fresh 16-byte salt. */
export async function hashPassword(password: string, params: ScryptParams = DEFAULT_SCRYPT_PARAMS): Promise<string> {
  const salt = randomBytes(SALT_BYTES)
  const hash = await derive(password, salt, params)
  return [PREFIX, params.N, params.r, params.p, salt.toString('base64url'), hash.toString('base64url')].join('$')
}

function parse(stored: string): { params: ScryptParams; salt: Buffer; hash: Buffer } | undefined {
  const parts = stored.split('$')
  if (parts.length !== 6 || parts[0] !== PREFIX) return undefined
  const [N, r, p] = parts.slice(1, 4).map(Number) as [number, number, number]
  const powerOfTwo = Number.isInteger(N) && N > 1 && (N & (N - 1)) === 0 && N <= 2 ** 20
  if (!powerOfTwo || !Number.isInteger(r) || r < 1 || r > 32 || !Number.isInteger(p) || p < 1 || p > 16) return undefined
  const salt = Buffer.from(parts[4]!, 'base64url')
  const hash = Buffer.from(parts[5]!, 'base64url')
  if (salt.length < 8 || hash.length !== HASH_BYTES) return undefined
  return { params: { N, r, p }, salt, hash }
}

/**
 * True when `password` matches `stored`. A malformed stored value never matches. Compares in
 * constant time; pass `undefined` for an unknown user to spend the same time as a real check, so the
 * answer's timing does not tell which user names exist.
 */
export async function verifyPassword(password: string, stored: string | undefined): Promise<boolean> {
  if (Buffer.byteLength(password, 'utf8') > MAX_PASSWORD_BYTES) return false
  const parsed = stored === undefined ? undefined : parse(stored)
  if (parsed === undefined) {
    await derive(password, randomBytes(SALT_BYTES), DEFAULT_SCRYPT_PARAMS)
    return false
  }
  const candidate = await derive(password, parsed.salt, parsed.params)
  return timingSafeEqual(candidate, parsed.hash)
}

/** True when `stored` was made with weaker parameters than `params` (rehash at the next sign-in). */
export function needsRehash(stored: string, params: ScryptParams = DEFAULT_SCRYPT_PARAMS): boolean {
  const parsed = parse(stored)
  return parsed === undefined || parsed.params.N < params.N || parsed.params.r < params.r || parsed.params.p < params.p
}

/** Random password of 24 base64url characters (144 bits) for bootstrap admins. */
export function generatePassword(): string {
  return randomBytes(18).toString('base64url')
}

/** The rule for a password a person chooses: long enough to resist guessing, short enough to hash. */
export function passwordProblem(password: string): string | undefined {
  if (password.length < 12) return 'the password must be at least 12 characters long'
  if (Buffer.byteLength(password, 'utf8') > MAX_PASSWORD_BYTES) return `the password must be at most ${MAX_PASSWORD_BYTES} bytes`
  return undefined
}

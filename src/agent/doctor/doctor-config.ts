import { z } from 'zod'
import { TunnelError } from '../../errors/index.ts'
import { durationMs, validateConfig } from '../../config/config-validation.ts'
import { parseListenAddress, type ListenAddress } from '../../config/listen-address.ts'
import { decodeSecurityKey, type SecurityKey } from '../../protocol/index.ts'
import { proxySettingsFrom, type ProxySettings } from '../../transport/proxy-settings.ts'

/**
 * The options of `apptunnel doctor`: the agent's own sources for the key, the upstream, the proxy
 * and the CA, plus what the operator expects the app's base URL to be.
 */
export const doctorConfigSchema = z
  .object({
    /** the security key as given (--key, --key-file, APPTUNNEL_KEY); else it is read from the database */
    key: z.string().min(1, 'the security key must not be empty').optional(),
    /** the on-prem app's plain-HTTP upstream port, HOST:PORT, as given to the agent */
    upstream: z.string().min(1),
    /** the instance database the agent nodes share: the key (when not given) and the nodes come from it */
    database: z.string().min(1).optional(),
    keyEncryptionFile: z.string().min(1).optional(),
    caFile: z.string().min(1).optional(),
    proxy: z.string().optional(),
    noProxy: z.string().optional(),
    /** the base URL the operator expects the app to report, e.g. https://jira.example.com */
    instanceUrl: z
      .string()
      .url('must be a URL, e.g. https://jira.example.com')
      .refine((u) => /^https?:\/\//i.test(u), 'must be an http:// or https:// URL')
      .optional(),
    /** deadline of each network step (connect, TLS, an answer), in ms */
    timeoutMs: durationMs(z, 5_000),
  })
  .strict()

export type DoctorConfigInput = z.input<typeof doctorConfigSchema>

export interface DoctorConfig {
  /** the key given directly, decoded; undefined: read it from the database */
  key: SecurityKey | undefined
  upstream: ListenAddress
  database: string | undefined
  keyEncryptionFile: string | undefined
  caFile: string | undefined
  /** undefined: the server is dialled directly */
  proxy: ProxySettings | undefined
  /** the origin (scheme://host[:port]) of --instance-url */
  instanceOrigin: string | undefined
  timeoutMs: number
}

export function loadDoctorConfig(input: DoctorConfigInput): Readonly<DoctorConfig> {
  const c = validateConfig(doctorConfigSchema, input, 'doctor')
  const upstream = parseListenAddress(c.upstream, 'upstream')
  if (upstream.port === 0) throw new TunnelError('TUN_ERR_CONFIG_INVALID', 'upstream: the port must not be 0')
  if (c.key === undefined && c.database === undefined) {
    throw new TunnelError('TUN_ERR_CONFIG_INVALID', 'key: a security key is required (--key, --key-file or APPTUNNEL_KEY), or the instance database (--database) it was added to')
  }
  return Object.freeze({
    key: c.key === undefined ? undefined : decodeSecurityKey(c.key),
    upstream,
    database: c.database,
    keyEncryptionFile: c.keyEncryptionFile,
    caFile: c.caFile,
    proxy: proxySettingsFrom(c.proxy, c.noProxy),
    instanceOrigin: c.instanceUrl === undefined ? undefined : new URL(c.instanceUrl).origin,
    timeoutMs: c.timeoutMs,
  })
}

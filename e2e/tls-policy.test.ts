import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { checkNoLeakedHandles } from '../src/testing/leak-check.ts'
import { startTestServer, type TestServer } from '../src/testing/tunnel-harness.ts'
import { FORWARD_SECRET_TLS12_CIPHERS } from '../src/transport/tls-policy.ts'

// The HTTPS listener (agent endpoint + admin API, src/server/start-server.ts) is probed with the real
// `openssl s_client`, so the policy in src/transport/tls-policy.ts is checked as a foreign client sees
// it rather than through Node's own TLS stack.
//
// How a refusal is attributed to the server and not to the client: refusals run with `-msg`, which
// prints every TLS record. For each one the test checks that
//   1. the client did send a ClientHello (`>>> …, ClientHello`), and the hex dump of that ClientHello
//      carries the protocol version and cipher suites being tested (parsed below, not assumed);
//   2. the server answered with a fatal alert (`<<< …, Alert …, fatal protocol_version` or
//      `fatal handshake_failure`): `<<<` marks bytes read from the server;
//   3. no ServerHello was ever received, and s_client reports `New, (NONE), Cipher is (NONE)`, i.e.
//      no session was negotiated.
// The `Protocol : …` line of the SSL-Session block is not used for refusals: after a failed handshake
// it shows the version the client attempted, not one the server agreed to.
//
// Control, run by hand while writing this test (not repeated here, to keep the file fast): the same
// `-tls1_1 -cipher 'DEFAULT:@SECLEVEL=0'` and `-tls1_2 -cipher AES128-GCM-SHA256` client commands
// complete a handshake against `openssl s_server -cipher 'ALL:@SECLEVEL=0'` with an RSA certificate,
// so this client can negotiate both when a server allows them.
//
// Accepted handshakes read the protocol from `-brief`'s `Protocol version:` line (and, for TLS 1.2,
// from the SSL-Session `Protocol :` line) and the suite from `Cipher is`; see handshake() below.
//
// Two listeners are probed: the default one, with the self-signed ECDSA P-256 certificate the server
// generates, and one with an operator-supplied RSA certificate (tlsCertFile/tlsKeyFile). With an ECDSA
// certificate, RSA key-exchange suites are impossible whatever the cipher list says, so only the RSA
// listener shows that the cipher list itself refuses static (non-forward-secret) key exchange.

checkNoLeakedHandles()

const OPENSSL = 'openssl'
const RUN_TIMEOUT_MS = 4_000

interface OpensslRun {
  code: number | null
  /** stdout and stderr together, in arrival order per stream */
  out: string
}

/** Runs openssl with stdin closed (/dev/null), so s_client ends right after the handshake. */
function openssl(args: readonly string[]): Promise<OpensslRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(OPENSSL, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`openssl ${args.join(' ')} did not finish within ${RUN_TIMEOUT_MS} ms; output so far:\n${out}`))
    }, RUN_TIMEOUT_MS)
    child.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      reject(
        err.code === 'ENOENT'
          ? new Error('the openssl binary (OpenSSL 3) is not installed or not on PATH: this test needs it (CI installs it; e.g. apt-get install openssl)')
          : err,
      )
    })
    child.once('close', (code) => {
      clearTimeout(timer)
      resolve({ code, out })
    })
  })
}

function sClient(port: number, args: readonly string[]): Promise<OpensslRun> {
  return openssl(['s_client', '-connect', `127.0.0.1:${port}`, ...args])
}

/** The bytes of the first ClientHello in `-msg` output (the hex dump under its `>>>` line). */
function clientHelloBytes(out: string): Buffer {
  const lines = out.split('\n')
  const at = lines.findIndex((l) => /^>>> TLS [\d.]+, Handshake \[length [0-9a-f]+\], ClientHello$/.test(l))
  assert.ok(at >= 0, `the client sent no ClientHello:\n${out}`)
  const hex: string[] = []
  for (const line of lines.slice(at + 1)) {
    if (!/^\s+([0-9a-f]{2}( |$))+/.test(line)) break
    hex.push(...line.trim().split(/\s+/))
  }
  return Buffer.from(hex.join(''), 'hex')
}

/** legacy_version and cipher suites of a ClientHello handshake message (RFC 5246 §7.4.1.2). */
function parseClientHello(hello: Buffer): { version: string; suites: number[] } {
  assert.equal(hello[0], 1, 'not a ClientHello')
  const version = `${hello[4]!.toString(16).padStart(2, '0')}${hello[5]!.toString(16).padStart(2, '0')}`
  let i = 4 + 2 + 32 // header, legacy_version, random
  i += 1 + hello[i]! // session id
  const suitesLength = hello.readUInt16BE(i)
  i += 2
  const suites: number[] = []
  for (let j = 0; j < suitesLength; j += 2) suites.push(hello.readUInt16BE(i + j))
  return { version, suites }
}

/** The cipher s_client reports (`New, …, Cipher is X`): read from its output, never assumed. */
function cipherIs(out: string): { line: string; cipher: string } {
  const m = /^New, \S+, Cipher is (\S+)$/m.exec(out)
  assert.ok(m !== null, `no "New, …, Cipher is …" line in s_client output:\n${out}`)
  return { line: m[0], cipher: m[1]! }
}

interface Handshake {
  /** the `New, …, Cipher is …` line of the full output */
  cipherLine: string
  cipher: string
  /** the `Protocol version:` line of the -brief output */
  protocolLine: string
  protocol: string
  /** `Protocol  : …` of the full output's SSL-Session block (absent for TLS 1.3 when stdin closes first) */
  sessionProtocolLine: string | undefined
  tempKeyLine: string | undefined
}

/**
 * One accepted handshake, observed twice: the full output gives `Cipher is` and `Server Temp Key`;
 * `-brief` gives `Protocol version:`. The version inside `New, TLSv1.x, Cipher is` is not used: s_client
 * prints there the cipher suite's own minimum version (SSL_CIPHER_get_version), e.g. `New, TLSv1.0,
 * Cipher is ECDHE-RSA-AES256-SHA` for a TLS 1.1 session, not the negotiated protocol.
 */
async function handshake(port: number, args: readonly string[]): Promise<Handshake> {
  const [full, brief] = await Promise.all([sClient(port, args), sClient(port, [...args, '-brief'])])
  assert.equal(full.code, 0, full.out)
  assert.equal(brief.code, 0, brief.out)
  const c = cipherIs(full.out)
  const p = /^Protocol version: (\S+)$/m.exec(brief.out)
  assert.ok(p !== null, `no "Protocol version:" line in s_client -brief output:\n${brief.out}`)
  const briefSuite = /^Ciphersuite: (\S+)$/m.exec(brief.out)?.[1]
  assert.equal(briefSuite, c.cipher, 'the two runs negotiated different suites')
  return {
    cipherLine: c.line,
    cipher: c.cipher,
    protocolLine: p[0],
    protocol: p[1]!,
    sessionProtocolLine: /^\s*Protocol\s*:\s*\S+$/m.exec(full.out)?.[0].trim().replace(/\s+/g, ' '),
    tempKeyLine: /^Server Temp Key: .+$/m.exec(full.out)?.[0],
  }
}

function describeHandshake(h: Handshake): string {
  return [h.cipherLine, h.protocolLine, h.sessionProtocolLine, h.tempKeyLine].filter((x) => x !== undefined).join(' | ')
}

const TLS_VERSION = { 'TLSv1.0': '0301', 'TLSv1.1': '0302', 'TLSv1.2': '0303' } as const

/**
 * Asserts the server, not the client, ended the handshake: a ClientHello with the given version (and
 * only the given suites, when listed) went out, a fatal alert came back, no ServerHello ever did.
 */
function assertRefusedByServer(
  run: OpensslRun,
  expected: { version: keyof typeof TLS_VERSION; suites?: readonly number[]; alert: 'protocol_version' | 'handshake_failure' },
): void {
  const hello = parseClientHello(clientHelloBytes(run.out))
  assert.equal(hello.version, TLS_VERSION[expected.version], `the client offered ${hello.version}, not ${expected.version}`)
  if (expected.suites !== undefined) {
    // 0x00ff is the renegotiation SCSV, not a cipher suite
    assert.deepEqual(hello.suites.filter((s) => s !== 0x00ff), [...expected.suites], 'the client offered other suites than the one under test')
  }
  assert.match(run.out, new RegExp(`^<<< TLS [\\d.]+, Alert \\[length 0002\\], fatal ${expected.alert}$`, 'm'), `no fatal ${expected.alert} alert from the server:\n${run.out}`)
  assert.doesNotMatch(run.out, /^<<< .*ServerHello/m, 'the server answered with a ServerHello')
  assert.equal(cipherIs(run.out).cipher, '(NONE)')
  assert.notEqual(run.code, 0)
}

const AES128_GCM_SHA256 = 0x009c // TLS_RSA_WITH_AES_128_GCM_SHA256: static RSA key exchange
const AES256_SHA = 0x0035 // TLS_RSA_WITH_AES_256_CBC_SHA: static RSA key exchange
const ECDHE_RSA_AES128_SHA = 0xc013 // forward secret but CBC, not in the AEAD-only policy
const ECDHE_ECDSA_AES128_SHA = 0xc009

describe('TLS policy of the HTTPS listener, seen by openssl s_client', { timeout: 15_000 }, () => {
  let ecdsaServer: TestServer
  let rsaServer: TestServer
  let rsaCertDir: string | undefined

  before(async () => {
    const version = await openssl(['version'])
    assert.match(version.out, /^OpenSSL 3\./, `this test needs OpenSSL 3's s_client; found: ${version.out.trim()}`)

    rsaCertDir = await mkdtemp(join(tmpdir(), 'apptunnel-tls-policy-'))
    const certFile = join(rsaCertDir, 'rsa.crt')
    const keyFile = join(rsaCertDir, 'rsa.key')
    const made = await openssl([
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile,
      '-days', '1', '-subj', '/CN=apptunnel tls-policy test', '-addext', 'subjectAltName=IP:127.0.0.1',
    ])
    assert.equal(made.code, 0, `could not make an RSA test certificate:\n${made.out}`)
    ;[ecdsaServer, rsaServer] = await Promise.all([startTestServer(), startTestServer({ tlsCertFile: certFile, tlsKeyFile: keyFile })])
  })

  after(async () => {
    await Promise.all([ecdsaServer?.dispose(), rsaServer?.dispose()])
    if (rsaCertDir !== undefined) await rm(rsaCertDir, { recursive: true, force: true })
  })

  const listeners = [
    { name: 'self-signed ECDSA certificate', server: () => ecdsaServer },
    { name: 'operator RSA certificate', server: () => rsaServer },
  ]

  for (const l of listeners) {
    test(`${l.name}: TLS 1.1 and TLS 1.0 are refused by the server (protocol_version alert)`, async () => {
      // SECLEVEL=0 lets OpenSSL 3 offer TLS < 1.2 at all; the offered version is checked in the ClientHello.
      for (const [flag, version] of [['-tls1_1', 'TLSv1.1'], ['-tls1', 'TLSv1.0']] as const) {
        const run = await sClient(l.server().apiAddress.port, [flag, '-cipher', 'DEFAULT:@SECLEVEL=0', '-msg'])
        assertRefusedByServer(run, { version, alert: 'protocol_version' })
        // The client also offered forward-secret ECDHE suites: the refusal is about the version alone.
        assert.ok(parseClientHello(clientHelloBytes(run.out)).suites.some((s) => s >= 0xc000), 'expected ECDHE suites in the TLS 1.1 offer')
      }
    })

    test(`${l.name}: TLS 1.2 with a static RSA key exchange suite is refused (handshake_failure)`, async () => {
      for (const [cipher, suite] of [['AES128-GCM-SHA256', AES128_GCM_SHA256], ['AES256-SHA', AES256_SHA]] as const) {
        const run = await sClient(l.server().apiAddress.port, ['-tls1_2', '-cipher', cipher, '-msg'])
        assertRefusedByServer(run, { version: 'TLSv1.2', suites: [suite], alert: 'handshake_failure' })
      }
    })

    test(`${l.name}: TLS 1.2 with ECDHE but without an AEAD cipher is refused too`, async () => {
      const run = await sClient(l.server().apiAddress.port, ['-tls1_2', '-cipher', 'ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES128-SHA', '-msg'])
      assertRefusedByServer(run, { version: 'TLSv1.2', suites: [ECDHE_RSA_AES128_SHA, ECDHE_ECDSA_AES128_SHA], alert: 'handshake_failure' })
    })

    test(`${l.name}: TLS 1.2 is accepted with an ECDHE suite, even when static-RSA suites are offered first`, async (t) => {
      const h = await handshake(l.server().apiAddress.port, ['-tls1_2', '-cipher', 'AES128-GCM-SHA256:AES256-SHA:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384'])
      t.diagnostic(describeHandshake(h))
      assert.equal(h.protocol, 'TLSv1.2')
      assert.equal(h.sessionProtocolLine, 'Protocol : TLSv1.2')
      assert.match(h.cipher, /^ECDHE-(ECDSA|RSA)-/)
      assert.ok(FORWARD_SECRET_TLS12_CIPHERS.split(':').includes(h.cipher), `${h.cipher} is not in the policy's list`)
      // the ephemeral key of the ECDHE exchange
      assert.match(h.tempKeyLine ?? '', /^Server Temp Key: (X25519|X448|ECDH)/)
    })

    test(`${l.name}: TLS 1.2 with the client's default offer negotiates ECDHE`, async (t) => {
      const h = await handshake(l.server().apiAddress.port, ['-tls1_2'])
      t.diagnostic(describeHandshake(h))
      assert.equal(h.protocol, 'TLSv1.2')
      assert.match(h.cipher, /^ECDHE-(ECDSA|RSA)-/)
    })

    test(`${l.name}: TLS 1.3 is accepted`, async (t) => {
      const h = await handshake(l.server().apiAddress.port, ['-tls1_3'])
      t.diagnostic(describeHandshake(h))
      assert.equal(h.protocol, 'TLSv1.3')
      assert.match(h.cipher, /^TLS_(AES_128_GCM_SHA256|AES_256_GCM_SHA384|CHACHA20_POLY1305_SHA256)$/)
      assert.match(h.tempKeyLine ?? '', /^Server Temp Key: (X25519|X448|ECDH)/)
    })
  }
})

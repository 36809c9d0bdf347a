import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdirSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from '../../src/testing/free-port.ts'
import { processTree } from './proc-stats.ts'

/** `ssh -R` in front of the same upstream: the peer the issue asks us to beat, measured in the same run. */
export interface SshPeer {
  /** the loopback port sshd forwards to the upstream through the ssh client */
  readonly port: number
  readonly label: string
  /** the ssh client and sshd with its per-connection children: whose CPU and RSS count as ssh's */
  pids(): number[]
  stop(): Promise<void>
}

const SSHD = '/usr/sbin/sshd'
const CIPHER = 'aes128-gcm@openssh.com'

/**
 * Starts a private sshd on a free loopback port (its own host key, config and one authorized client
 * key, all in a temporary directory) and `ssh -N -R` from a client to it, so that connections to
 * the forwarded port reach the upstream the way `ssh -R` users run it, with the fastest cipher the
 * transport notes measured.
 * Returns why not when OpenSSH is not installed or will not start.
 */
export async function startSshPeer(upstreamPort: number): Promise<SshPeer | { unavailable: string }> {
  if (!sshPeerInstalled()) return { unavailable: 'OpenSSH (ssh and sshd) is not installed (apt-get install openssh-server)' }
  const dir = await mkdtemp(join(tmpdir(), 'apptunnel-ssh-peer-'))
  const children: ChildProcess[] = []
  const stop = async (): Promise<void> => {
    for (const c of children) {
      if (c.exitCode === null && c.signalCode === null) {
        const exited = once(c, 'exit')
        c.kill('SIGTERM')
        await exited
      }
    }
    await rm(dir, { recursive: true, force: true })
  }
  try {
    for (const name of ['host', 'client']) {
      const r = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, name)])
      if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.stderr.toString().trim()}`)
    }
    await writeFile(join(dir, 'authorized_keys'), await readFile(join(dir, 'client.pub')), { mode: 0o600 })
    const sshdPort = await freePort()
    await writeFile(
      join(dir, 'sshd_config'),
      [
        `Port ${sshdPort}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${join(dir, 'host')}`,
        `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'PermitRootLogin prohibit-password',
        'StrictModes no',
        'UsePAM no',
        'AllowTcpForwarding yes',
        `PidFile ${join(dir, 'sshd.pid')}`,
        '',
      ].join('\n'),
    )
    // sshd's privilege separation wants its empty directory; a package install makes it at boot.
    if (!existsSync('/run/sshd')) mkdirSync('/run/sshd', { recursive: true, mode: 0o755 })
    const sshd = spawn(SSHD, ['-D', '-e', '-f', join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] })
    children.push(sshd)
    await waitForPort(sshdPort, 5000, sshd)
    const port = await freePort()
    const client = spawn(
      'ssh',
      [
        '-N',
        '-i', join(dir, 'client'),
        '-p', String(sshdPort),
        '-o', 'StrictHostKeyChecking=no',
        '-o', `UserKnownHostsFile=${join(dir, 'known_hosts')}`,
        '-o', 'BatchMode=yes',
        '-o', 'ExitOnForwardFailure=yes',
        '-o', `Ciphers=${CIPHER}`,
        '-R', `127.0.0.1:${port}:127.0.0.1:${upstreamPort}`,
        '127.0.0.1',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    )
    children.unshift(client)
    await waitForPort(port, 5000, client)
    return { port, label: `ssh -R (${CIPHER.replace('@openssh.com', '')})`, pids: () => [client.pid!, ...processTree(sshd.pid!)], stop }
  } catch (err) {
    await stop()
    return { unavailable: err instanceof Error ? err.message : String(err) }
  }
}

export function sshPeerInstalled(): boolean {
  return existsSync(SSHD) && spawnSync('ssh', ['-V']).status === 0
}

/** Polls until the port accepts a connection, the child exits, or the time is up. */
async function waitForPort(port: number, timeoutMs: number, child: ChildProcess): Promise<void> {
  let stderr = ''
  child.stderr?.setEncoding('utf8')
  child.stderr?.on('data', (s: string) => {
    if (stderr.length < 4000) stderr += s
  })
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${child.spawnfile} exited: ${stderr.trim().split('\n').slice(-2).join(' ')}`)
    const up = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1')
      s.once('connect', () => {
        s.destroy()
        resolve(true)
      })
      s.once('error', () => resolve(false))
    })
    if (up) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`port ${port} of ${child.spawnfile} did not open within ${timeoutMs} ms: ${stderr.trim().split('\n').slice(-2).join(' ')}`)
}

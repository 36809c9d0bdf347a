import { connect } from 'node:net'

export interface RawPart {
  bytes: string
  /** wait this long after the previous part before writing this one */
  delayMs?: number
}

/**
 * A raw caller of the ingress: writes the parts (latin1, each after its delay), optionally
 * half-closes, and collects everything until the ingress closes the connection (at most 5 s).
 */
export function rawExchange(port: number, parts: string | RawPart[], options: { halfCloseAfterMs?: number } = {}): Promise<string> {
  const list = typeof parts === 'string' ? [{ bytes: parts }] : parts
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1')
    let out = ''
    const timers: NodeJS.Timeout[] = []
    const giveUp = setTimeout(() => {
      s.destroy()
      reject(new Error(`the ingress did not close the connection; it sent: ${JSON.stringify(out)}`))
    }, 5000)
    s.on('data', (d: Buffer) => (out += d.toString('latin1')))
    s.on('error', () => {})
    s.on('close', () => {
      timers.forEach(clearTimeout)
      clearTimeout(giveUp)
      resolve(out)
    })
    let at = 0
    for (const p of list) {
      at += p.delayMs ?? 0
      if (at === 0) s.write(Buffer.from(p.bytes, 'latin1'))
      else timers.push(setTimeout(() => s.writable && s.write(Buffer.from(p.bytes, 'latin1')), at))
    }
    if (options.halfCloseAfterMs !== undefined) timers.push(setTimeout(() => s.writable && s.end(), at + options.halfCloseAfterMs))
  })
}

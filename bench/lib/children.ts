import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'

/** A forked TypeScript helper process (upstream, load client, agent swarm) driven over IPC. */
export interface Child {
  readonly proc: ChildProcess
  readonly pid: number
  /** sends a job and resolves with the child's { result } answer to it */
  call<T>(job: unknown, timeoutMs: number): Promise<T>
  /** resolves on the first message the predicate accepts */
  waitMessage<T>(predicate: (m: T) => boolean, timeoutMs: number): Promise<T>
  stop(): Promise<void>
}

export async function forkChild(file: string, nodeArgs: string[] = []): Promise<Child> {
  const proc = fork(new URL(`../${file}`, import.meta.url).pathname, [], {
    execArgv: ['--import', 'tsx', ...nodeArgs],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  await once(proc, 'spawn')
  let nextId = 1
  const child: Child = {
    proc,
    pid: proc.pid!,
    call<T>(job: unknown, timeoutMs: number): Promise<T> {
      const id = nextId++
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => {
          proc.off('message', onMessage)
          reject(new Error(`${file}: no answer within ${timeoutMs} ms`))
        }, timeoutMs)
        const onMessage = (m: { id?: number; result?: T; error?: string }): void => {
          if (m.id !== id) return
          clearTimeout(timer)
          proc.off('message', onMessage)
          if (m.error !== undefined) reject(new Error(m.error))
          else resolve(m.result as T)
        }
        proc.on('message', onMessage)
        proc.send({ id, job })
      })
    },
    waitMessage<T>(predicate: (m: T) => boolean, timeoutMs: number): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => {
          proc.off('message', onMessage)
          reject(new Error(`${file}: expected message not seen within ${timeoutMs} ms`))
        }, timeoutMs)
        const onMessage = (m: T): void => {
          if (!predicate(m)) return
          clearTimeout(timer)
          proc.off('message', onMessage)
          resolve(m)
        }
        proc.on('message', onMessage)
      })
    },
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return
      const exited = once(proc, 'exit')
      proc.kill('SIGTERM')
      await exited
    },
  }
  return child
}

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

/**
 * The two helpers every measured run needs: the upstream app (a plain node:http server) and the
 * load generator. Both are pushed onto `children` as soon as they exist, so the caller's cleanup
 * stops them even if the other fails to start.
 */
export async function startUpstreamAndLoad(children: Child[]): Promise<{ upstreamPort: number; load: Child }> {
  const upstream = await forkChild('upstream-process.ts')
  children.push(upstream)
  const { port: upstreamPort } = await upstream.waitMessage<{ port: number }>((m) => typeof m.port === 'number', 20_000)
  const load = await forkChild('load-client.ts')
  children.push(load)
  return { upstreamPort, load }
}

/** The child's side of `Child.call`: runs each job it is sent and answers with its result or error. */
export function answerJobs<J>(run: (job: J) => Promise<unknown>): void {
  process.on('message', (msg: { id: number; job: J }) => {
    run(msg.job).then(
      (result) => process.send?.({ id: msg.id, result }),
      (err: Error) => process.send?.({ id: msg.id, error: err.message }),
    )
  })
}

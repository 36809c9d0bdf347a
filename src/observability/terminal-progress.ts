/**
 * One line of progress for a long operation (database migrations, a drain) on a terminal:
 *
 *   migrating database: 2/5 0002-cluster
 *   draining: 12 connections, 3 sessions left … 4 s
 *
 * Only when the output is a TTY. Otherwise every method does nothing and no timer is started, so a
 * redirected stderr (a JSON log read by a machine) never gets a carriage return or an escape
 * sequence. On a terminal the line is redrawn in place ("\r", the text, erase to the end of the
 * line) at most once per minIntervalMs, and erased by done(): what stays on screen are the log
 * lines, which `aboveProgress` writes above the line while it shows.
 */

/** Where the line is drawn: a tty.WriteStream, or anything shaped like one. */
export interface ProgressOutput {
  write(chunk: string): unknown
  readonly isTTY?: boolean | undefined
  /** the terminal's width in characters; 0 or undefined when unknown */
  readonly columns?: number | undefined
}

/** Time, injectable so the throttle is tested without waiting. */
export interface ProgressClock {
  now(): number
  setTimeout(fn: () => void, ms: number): unknown
  clearTimeout(timer: unknown): void
}

export const systemProgressClock: ProgressClock = {
  now: () => Date.now(),
  // Unref'd: a progress line never keeps a process alive that has nothing else to do.
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (timer) => clearTimeout(timer as NodeJS.Timeout),
}

export interface TerminalProgressOptions {
  /** the terminal; undefined, or not a TTY, turns the progress off */
  out: ProgressOutput | undefined
  clock?: ProgressClock
  /** [minIntervalMs=250] the line is redrawn at most this often (4 times a second) */
  minIntervalMs?: number
}

const ERASE_LINE = '\r\u001b[K'

/** The progress line showing on each terminal, so that log lines can be written above it. */
const showing = new WeakMap<ProgressOutput, TerminalProgress>()

export class TerminalProgress {
  /** false when the output is no terminal: then nothing is ever written */
  readonly enabled: boolean
  readonly #out: ProgressOutput | undefined
  readonly #clock: ProgressClock
  readonly #minIntervalMs: number
  readonly #startedAt: number
  /** the text on screen ('' when the line is blank) */
  #shown = ''
  /** the newest text, when it waits for the throttle */
  #pending: string | undefined
  #lastDrawAt = Number.NEGATIVE_INFINITY
  #timer: unknown
  #render: ((elapsedMs: number) => string) | undefined
  #done = false

  constructor(options: TerminalProgressOptions) {
    this.#out = options.out
    this.enabled = options.out?.isTTY === true
    this.#clock = options.clock ?? systemProgressClock
    this.#minIntervalMs = options.minIntervalMs ?? 250
    this.#startedAt = this.#clock.now()
  }

  /** Shows `text`: at once if the last redraw is minIntervalMs old, else when it is (newest text wins). */
  update(text: string): void {
    if (!this.enabled || this.#done) return
    this.#pending = text
    const wait = this.#lastDrawAt + this.#minIntervalMs - this.#clock.now()
    if (wait <= 0) this.#flush()
    else if (this.#timer === undefined) this.#timer = this.#clock.setTimeout(() => this.#tick(), wait)
  }

  /**
   * Shows `render(elapsed ms since this progress was made)` now and then every minIntervalMs until
   * done(): for states that change without an event of their own, like counts that drain away.
   */
  follow(render: (elapsedMs: number) => string): void {
    if (!this.enabled || this.#done) return
    this.#render = render
    this.#clock.clearTimeout(this.#timer)
    this.#timer = undefined
    this.#pending = render(this.#clock.now() - this.#startedAt)
    this.#flush()
  }

  /** Erases the line and stops every timer; later calls do nothing. Idempotent. */
  done(): void {
    if (this.#done) return
    this.#done = true
    this.#clock.clearTimeout(this.#timer)
    this.#timer = undefined
    this.#pending = undefined
    this.#render = undefined
    if (this.#shown !== '') this.#out!.write(ERASE_LINE)
    this.#shown = ''
    if (this.#out !== undefined && showing.get(this.#out) === this) showing.delete(this.#out)
  }

  /** Runs `write` (which prints whole lines) with the line erased, then draws it again below them. */
  printAbove(write: () => void): void {
    if (this.#shown === '') return write()
    this.#out!.write(ERASE_LINE)
    write()
    this.#out!.write(`\r${this.#shown}\u001b[K`)
  }

  #tick(): void {
    this.#timer = undefined
    if (this.#render !== undefined) this.#pending = this.#render(this.#clock.now() - this.#startedAt)
    this.#flush()
  }

  #flush(): void {
    const text = this.#pending === undefined ? undefined : this.#fit(this.#pending)
    this.#pending = undefined
    if (text !== undefined && text !== this.#shown) {
      this.#out!.write(`\r${text}\u001b[K`)
      this.#shown = text
      this.#lastDrawAt = this.#clock.now()
      showing.set(this.#out!, this)
    }
    if (this.#render !== undefined && this.#timer === undefined) this.#timer = this.#clock.setTimeout(() => this.#tick(), this.#minIntervalMs)
  }

  /** A line wider than the terminal wraps, and "\r" would then redraw only its last row. */
  #fit(text: string): string {
    const line = text.replace(/[\r\n]+/g, ' ')
    const width = this.#out?.columns ?? 0
    if (width < 2 || line.length < width) return line
    return `${line.slice(0, width - 2)}…`
  }
}

/**
 * Wraps a sink of whole lines (the logger's) so that each line written while a progress line shows
 * on `terminal` goes above it instead of being glued to its end.
 */
export function aboveProgress(sink: { write(chunk: string): unknown }, terminal: ProgressOutput): { write(chunk: string): void } {
  return {
    write(chunk: string): void {
      const progress = showing.get(terminal)
      if (progress === undefined) sink.write(chunk)
      else progress.printAbove(() => void sink.write(chunk))
    },
  }
}

/** `migrating database: 2/5 0002-cluster` */
export function describeMigration(step: { name: string; index: number; total: number }): string {
  return `migrating database: ${step.index}/${step.total} ${step.name}`
}

/** `draining: 12 connections, 3 sessions left … 4 s` */
export function describeDrain(left: { connections: number; sessions: number }, elapsedMs: number): string {
  const count = (n: number, noun: string): string => `${n} ${noun}${n === 1 ? '' : 's'}`
  return `draining: ${count(left.connections, 'connection')}, ${count(left.sessions, 'session')} left … ${Math.floor(elapsedMs / 1000)} s`
}

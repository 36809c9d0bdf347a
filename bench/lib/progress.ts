/**
 * Progress on stderr: one line rewritten in place on a terminal, plain lines otherwise (CI logs),
 * so stdout stays for the results table and the final JSON line.
 */
export class Progress {
  readonly #tty = process.stderr.isTTY === true
  readonly #total: number
  #step = 0
  readonly #t0 = performance.now()

  constructor(totalSteps: number) {
    this.#total = totalSteps
  }

  step(label: string): void {
    this.#step++
    const elapsed = ((performance.now() - this.#t0) / 1000).toFixed(0).padStart(3)
    const line = `[${String(this.#step).padStart(2)}/${this.#total}] ${elapsed}s  ${label}`
    if (this.#tty) process.stderr.write(`\r\x1b[2K${line}`)
    else process.stderr.write(line + '\n')
  }

  note(text: string): void {
    if (this.#tty) process.stderr.write(`\r\x1b[2K${text}\n`)
    else process.stderr.write(text + '\n')
  }

  done(): void {
    if (this.#tty) process.stderr.write('\r\x1b[2K')
  }
}

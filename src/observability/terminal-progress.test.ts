import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { TerminalProgress, aboveProgress, describeDrain, describeMigration, type ProgressClock, type ProgressOutput } from './terminal-progress.ts'

/** A clock whose time moves only when the test says, firing due timers in order. */
class ManualClock implements ProgressClock {
  #now = 1_000_000
  #timers = new Map<number, { at: number; fn: () => void }>()
  #next = 1
  now(): number {
    return this.#now
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.#next++
    this.#timers.set(id, { at: this.#now + ms, fn })
    return id
  }
  clearTimeout(timer: unknown): void {
    this.#timers.delete(timer as number)
  }
  get pendingTimers(): number {
    return this.#timers.size
  }
  /** Moves time forward in 1 ms steps, running each timer when it is due. */
  advance(ms: number): void {
    for (let i = 0; i < ms; i++) {
      this.#now++
      for (const [id, t] of [...this.#timers]) {
        if (t.at > this.#now) continue
        this.#timers.delete(id)
        t.fn()
      }
    }
  }
}

/** A fake terminal: what was written to it, and the line a person would now see. */
function terminal(isTTY: boolean, columns = 80): ProgressOutput & { chunks: string[]; frames: () => string[] } {
  const chunks: string[] = []
  return {
    isTTY,
    columns,
    chunks,
    write(chunk: string) {
      chunks.push(chunk)
      return true
    },
    /** every progress text drawn, in order */
    frames: () => chunks.filter((c) => c.startsWith('\r') && c.length > '\r\u001b[K'.length).map((c) => c.slice(1, -'\u001b[K'.length)),
  }
}

describe('TerminalProgress', () => {
  test('not a terminal: nothing is written and no timer is started, whatever is called', () => {
    const clock = new ManualClock()
    const out = terminal(false)
    const p = new TerminalProgress({ out, clock })
    assert.equal(p.enabled, false)
    p.update('migrating database: 1/5 0001-initial')
    p.follow(() => 'draining')
    clock.advance(2_000)
    p.done()
    assert.deepEqual(out.chunks, [])
    assert.equal(clock.pendingTimers, 0)
    assert.equal(new TerminalProgress({ out: undefined, clock }).enabled, false)
  })

  test('the first update is drawn at once, in place: carriage return, text, erase to the end of the line', () => {
    const out = terminal(true)
    new TerminalProgress({ out, clock: new ManualClock() }).update('migrating database: 1/5 0001-initial')
    assert.deepEqual(out.chunks, ['\rmigrating database: 1/5 0001-initial\u001b[K'])
  })

  test('a burst of updates is drawn at most once per 250 ms, and the newest text is drawn last', () => {
    const clock = new ManualClock()
    const out = terminal(true)
    const p = new TerminalProgress({ out, clock })
    const drawnAt: number[] = []
    const write = out.write.bind(out)
    out.write = (chunk: string) => {
      drawnAt.push(clock.now())
      return write(chunk)
    }
    // 200 updates over one second, one every 5 ms.
    for (let i = 1; i <= 200; i++) {
      p.update(`step ${i}`)
      clock.advance(5)
    }
    clock.advance(250)
    assert.ok(drawnAt.length <= 6, `${drawnAt.length} redraws in 1.25 s`)
    for (let i = 1; i < drawnAt.length; i++) assert.ok(drawnAt[i]! - drawnAt[i - 1]! >= 250, `redraws ${drawnAt[i - 1]} and ${drawnAt[i]} are less than 250 ms apart`)
    assert.equal(out.frames().at(-1), 'step 200', 'the last update reaches the screen although no update followed it')
    assert.equal(clock.pendingTimers, 0)
  })

  test('the same text is not drawn again', () => {
    const clock = new ManualClock()
    const out = terminal(true)
    const p = new TerminalProgress({ out, clock })
    p.update('same')
    clock.advance(300)
    p.update('same')
    clock.advance(300)
    assert.deepEqual(out.frames(), ['same'])
  })

  test('a text wider than the terminal is cut to fit on one row, so the carriage return redraws all of it', () => {
    const out = terminal(true, 20)
    new TerminalProgress({ out, clock: new ManualClock() }).update('migrating database: 4/5 0004-linked-products')
    assert.deepEqual(out.frames(), ['migrating database…'])
    assert.equal(out.frames()[0]!.length, 19)
    const unknownWidth = terminal(true, 0)
    new TerminalProgress({ out: unknownWidth, clock: new ManualClock() }).update('a line\nin two')
    assert.deepEqual(unknownWidth.frames(), ['a line in two'])
  })

  test('done() erases the line, drops a pending update and clears its timer; later calls draw nothing', () => {
    const clock = new ManualClock()
    const out = terminal(true)
    const p = new TerminalProgress({ out, clock })
    p.update('one')
    p.update('two')
    assert.equal(clock.pendingTimers, 1, 'two waits for the throttle')
    p.done()
    assert.equal(clock.pendingTimers, 0)
    assert.deepEqual(out.chunks, ['\rone\u001b[K', '\r\u001b[K'])
    p.update('three')
    p.follow(() => 'four')
    p.done()
    clock.advance(1_000)
    assert.deepEqual(out.chunks, ['\rone\u001b[K', '\r\u001b[K'])
  })

  test('done() before anything was drawn writes nothing', () => {
    const out = terminal(true)
    new TerminalProgress({ out, clock: new ManualClock() }).done()
    assert.deepEqual(out.chunks, [])
  })

  test('follow() renders with the elapsed time every 250 ms, draws only changes, and stops at done()', () => {
    const clock = new ManualClock()
    const out = terminal(true)
    const p = new TerminalProgress({ out, clock })
    let connections = 3
    p.follow((ms) => describeDrain({ connections, sessions: 1 }, ms))
    clock.advance(600)
    connections = 1
    clock.advance(700)
    connections = 0
    clock.advance(1_000)
    assert.deepEqual(out.frames(), [
      'draining: 3 connections, 1 session left … 0 s',
      'draining: 1 connection, 1 session left … 0 s',
      'draining: 1 connection, 1 session left … 1 s',
      'draining: 0 connections, 1 session left … 1 s',
      'draining: 0 connections, 1 session left … 2 s',
    ])
    assert.equal(clock.pendingTimers, 1, 'it keeps following')
    p.done()
    assert.equal(clock.pendingTimers, 0)
    clock.advance(1_000)
    assert.equal(out.chunks.at(-1), '\r\u001b[K')
  })
})

describe('aboveProgress', () => {
  test('a log line written while a progress line shows goes above it, and the progress line is drawn again', () => {
    const out = terminal(true)
    const log = aboveProgress(out, out)
    const p = new TerminalProgress({ out, clock: new ManualClock() })
    p.update('draining: 1 connection, 2 sessions left … 0 s')
    log.write('12:00:00.000  INFO  agent-gateway  agent session closed\n')
    assert.deepEqual(out.chunks, [
      '\rdraining: 1 connection, 2 sessions left … 0 s\u001b[K',
      '\r\u001b[K',
      '12:00:00.000  INFO  agent-gateway  agent session closed\n',
      '\rdraining: 1 connection, 2 sessions left … 0 s\u001b[K',
    ])
    p.done()
    log.write('after\n')
    assert.deepEqual(out.chunks.slice(-2), ['\r\u001b[K', 'after\n'], 'once done, lines pass through untouched')
  })

  test('with no progress showing, lines pass through untouched', () => {
    const out = terminal(true)
    aboveProgress(out, out).write('{"level":30,"msg":"x"}\n')
    assert.deepEqual(out.chunks, ['{"level":30,"msg":"x"}\n'])
  })
})

test('describeMigration and describeDrain: the words a person reads', () => {
  assert.equal(describeMigration({ name: '0003-instance', index: 2, total: 4 }), 'migrating database: 2/4 0003-instance')
  assert.equal(describeDrain({ connections: 12, sessions: 3 }, 4_999), 'draining: 12 connections, 3 sessions left … 4 s')
  assert.equal(describeDrain({ connections: 1, sessions: 0 }, 0), 'draining: 1 connection, 0 sessions left … 0 s')
})

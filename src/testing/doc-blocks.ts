import { readFileSync } from 'node:fs'

/** A fenced code block of a Markdown document, as the tests that run documented commands read it. */
export interface DocBlock {
  /** the fence's info string (`sh`, `ini`, `conf`, … or '') */
  readonly info: string
  /** the block's lines with the fence's own indentation taken off */
  readonly body: string
  /** the HTML comment right above the fence (blank lines between allowed), without `<!--`/`-->` */
  readonly marker: string | undefined
  /** the nearest heading above it, without its hashes */
  readonly heading: string
  /** 1-based line of the opening fence */
  readonly line: number
}

/** Every fenced block of the Markdown file at `path` (fences may be indented, as in list items). */
export function docBlocks(path: string | URL): DocBlock[] {
  const lines = readFileSync(path, 'utf8').split('\n')
  const blocks: DocBlock[] = []
  let heading = ''
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!
    const h = /^#+ (.*)$/.exec(l)
    if (h !== null) heading = h[1]!
    const open = /^( *)```(\S*)\s*$/.exec(l)
    if (open === null) continue
    const indent = open[1]!.length
    const body: string[] = []
    let j = i + 1
    for (; j < lines.length && !/^ *```\s*$/.test(lines[j]!); j++) body.push(lines[j]!.slice(Math.min(indent, /^ */.exec(lines[j]!)![0].length)))
    let k = i - 1
    while (k >= 0 && lines[k]!.trim() === '') k--
    const comment = k >= 0 ? /^\s*<!--\s*(.*?)\s*-->\s*$/.exec(lines[k]!) : null
    blocks.push({ info: open[2]!, body: body.join('\n'), marker: comment?.[1], heading, line: i + 1 })
    i = j
  }
  return blocks
}

/** The one block whose body includes `text`; throws naming the document when there is not exactly one. */
export function docBlockWith(path: string | URL, text: string): DocBlock {
  const found = docBlocks(path).filter((b) => b.body.includes(text))
  if (found.length !== 1) throw new Error(`${String(path)}: expected one code block with ${JSON.stringify(text)}, found ${found.length}`)
  return found[0]!
}

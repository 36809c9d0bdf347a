import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { CONSOLE_SECURITY_HEADERS } from './security-headers.ts'

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.svg': 'image/svg+xml',
}

/**
 * The package's root folder. The console's browser files are read from the package (src/…) both
 * when the sources run through tsx and when the CLI runs its bundle from dist/, so the search walks
 * up from wherever this module ended up rather than assuming a depth.
 */
export function packageRoot(from: string = fileURLToPath(import.meta.url)): string {
  let dir = dirname(from)
  for (;;) {
    const manifest = join(dir, 'package.json')
    if (existsSync(manifest)) {
      const name = (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name
      if (name === 'apptunnel') return dir
    }
    const up = dirname(dir)
    if (up === dir) throw new Error('cannot find the apptunnel package folder (package.json) above ' + from)
    dir = up
  }
}

interface Asset {
  body: Buffer
  type: string
  etag: string
}

/**
 * A console's static files: read once at start (a missing file fails the start, not a page view),
 * then answered from memory with an ETag, so a browser revalidates cheaply and always gets the
 * files of the running version.
 */
export class ConsoleAssets {
  readonly #files = new Map<string, Asset>()
  readonly #shell: Asset

  /**
   * @param files URL path → file path relative to the package root
   * @param shell the HTML page every console route answers with (its script draws the view)
   */
  constructor(files: Readonly<Record<string, string>>, shell: string) {
    const root = packageRoot()
    const load = (file: string): Asset => {
      const body = readFileSync(join(root, file))
      const ext = file.slice(file.lastIndexOf('.'))
      return { body, type: TYPES[ext] ?? 'application/octet-stream', etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` }
    }
    for (const [url, file] of Object.entries(files)) this.#files.set(url, load(file))
    this.#shell = load(shell)
  }

  /** Answers a GET/HEAD for a static file; false when the path is not one. */
  serveFile(req: IncomingMessage, res: ServerResponse, path: string): boolean {
    const asset = this.#files.get(path)
    if (asset === undefined) return false
    this.#send(req, res, asset, 'no-cache')
    return true
  }

  /**
   * Answers with the HTML shell of the console. With 404 (a page the console does not have), the
   * shell's script draws the console's own not-found page.
   */
  serveShell(req: IncomingMessage, res: ServerResponse, status: 200 | 404 = 200): void {
    this.#send(req, res, this.#shell, 'no-store', status)
  }

  /** Whether a request is a browser asking for a page (not the API, not a script fetching JSON). */
  static wantsPage(req: IncomingMessage): boolean {
    return (req.method === 'GET' || req.method === 'HEAD') && /\btext\/html\b/.test(req.headers.accept ?? '')
  }

  #send(req: IncomingMessage, res: ServerResponse, asset: Asset, cacheControl: string, status = 200): void {
    const headers = { ...CONSOLE_SECURITY_HEADERS, 'content-type': asset.type, 'cache-control': cacheControl, etag: asset.etag }
    if (status === 200 && req.headers['if-none-match'] === asset.etag) {
      res.writeHead(304, headers).end()
      return
    }
    res.writeHead(status, { ...headers, 'content-length': String(asset.body.length) })
    res.end(req.method === 'HEAD' ? undefined : asset.body)
  }
}

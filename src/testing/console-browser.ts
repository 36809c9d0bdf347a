import { mkdir } from 'node:fs/promises'
import { request } from 'node:https'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'

/** Debian's Chromium (apt install chromium); tests never download a browser. */
export const CHROMIUM_PATH = process.env['APPTUNNEL_CHROMIUM'] ?? '/usr/bin/chromium'

/** Where screenshots of console pages go, for a reviewer to look at. */
export const TEST_RESULTS_DIR = new URL('../../test-results/', import.meta.url).pathname

/** One headless Chromium for a test file; close it in `after`. */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  })
}

/**
 * A fresh browser profile (cookies, storage) that accepts the consoles' self-signed certificates and
 * may use the clipboard, as an admin's browser would after accepting the certificate once.
 */
export async function newConsoleContext(browser: Browser, options: { width?: number } = {}): Promise<BrowserContext> {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: options.width ?? 1200, height: 800 } })
  await context.grantPermissions(['clipboard-read', 'clipboard-write'])
  context.setDefaultTimeout(10_000)
  return context
}

/** Writes test-results/console-<name>.png (the whole page). */
export async function screenshot(page: Page, name: string): Promise<void> {
  await mkdir(TEST_RESULTS_DIR, { recursive: true })
  await page.screenshot({ path: `${TEST_RESULTS_DIR}console-${name}.png`, fullPage: true })
}

export interface RawResponse {
  status: number
  body: string
  headers: Record<string, string | string[] | undefined>
}

/** One HTTPS request to a console outside the browser (a forged or scripted request), trusting `ca`. */
export function consoleRequest(url: string, ca: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'GET', headers: options.headers ?? {}, ca, agent: false, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error('request timed out')))
    req.on('error', reject)
    req.end(options.body)
  })
}

import { mkdir, readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
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

/** The widths every console page is looked at: a laptop and a phone. */
export const PAGE_WIDTHS = [1280, 375] as const

/**
 * Writes test-results/console-<name>-<state>-<width>.png at each of PAGE_WIDTHS (the whole page),
 * then puts the viewport back as it was; answers how wide the page was at each (scrolling sideways
 * when wider than the window).
 */
export async function screenshotWidths(page: Page, name: string, state: 'healthy' | 'failing'): Promise<Array<{ width: number; scrollWidth: number }>> {
  await mkdir(TEST_RESULTS_DIR, { recursive: true })
  const before = page.viewportSize() ?? { width: 1200, height: 800 }
  const seen: Array<{ width: number; scrollWidth: number }> = []
  for (const width of PAGE_WIDTHS) {
    await page.setViewportSize({ width, height: 800 })
    seen.push({ width, scrollWidth: await page.evaluate(() => document.documentElement.scrollWidth) })
    await page.screenshot({ path: `${TEST_RESULTS_DIR}console-${name}-${state}-${width}.png`, fullPage: true })
  }
  await page.setViewportSize(before)
  return seen
}

let axeSource: string | undefined

export interface AxeViolation {
  id: string
  impact: string | null
  help: string
  nodes: Array<{ target: string[]; failureSummary?: string | undefined }>
}

/**
 * Runs axe-core in the page and answers its serious and critical violations. The script is
 * evaluated through the DevTools protocol, which the console's CSP (scripts from its own origin
 * only) does not apply to, so the page's policy stays as it is in production.
 */
export async function seriousAxeViolations(page: Page): Promise<AxeViolation[]> {
  axeSource ??= await readFile(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8')
  const loaded = await page.evaluate(() => typeof (window as unknown as { axe?: unknown }).axe !== 'undefined')
  if (!loaded) await page.evaluate(axeSource)
  const violations = await page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run(ctx: Document, options: unknown): Promise<{ violations: AxeViolation[] }> } }).axe
    const result = await axe.run(document, { resultTypes: ['violations'] })
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => ({ target: n.target, failureSummary: n.failureSummary })) }))
  })
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
}

import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import { after, before, describe, test } from 'node:test'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { consoleRequest, launchBrowser, newConsoleContext, screenshot } from '../src/testing/console-browser.ts'
import { checkNoLeakedHandles } from '../src/testing/leak-check.ts'
import { startTestServer, type TestServer } from '../src/testing/tunnel-harness.ts'

checkNoLeakedHandles()

describe('cloud console in Chromium (issue 7)', () => {
  let server: TestServer
  let browser: Browser
  let context: BrowserContext
  let page: Page
  let origin: string
  let password: string
  let attacker: Server

  before(async () => {
    server = await startTestServer({ maxTunnelsPerOrg: 2 })
    origin = `https://127.0.0.1:${server.apiAddress.port}`
    password = (await readFile(`${server.dataDir}/console-admin-password`, 'utf8')).trim()
    browser = await launchBrowser()
    context = await newConsoleContext(browser)
    page = await context.newPage()
  })

  after(async () => {
    await browser?.close()
    await new Promise<void>((r) => (attacker === undefined ? r() : attacker.close(() => r())))
    await server?.dispose()
  })

  async function signIn(p: Page, pw: string): Promise<void> {
    await p.getByLabel('User name').fill('admin')
    await p.getByLabel('Password').fill(pw)
    await p.getByRole('button', { name: 'Sign in' }).click()
  }

  test('the bootstrap admin exists; a wrong password is refused, the right one signs in', async () => {
    await page.goto(`${origin}/`)
    await page.getByRole('heading', { name: 'Sign in to the cloud console' }).waitFor()
    assert.equal(new URL(page.url()).pathname, '/console/login')
    await screenshot(page, 'cloud-sign-in')
    await signIn(page, 'not-the-password')
    const alert = page.getByRole('alert')
    await alert.getByText('the user name or password is wrong').waitFor()
    assert.match(await alert.textContent() ?? '', /TUN_ERR_CONSOLE_LOGIN_FAILED/)
    assert.equal(await page.getByLabel('Password').getAttribute('aria-invalid'), 'true')
    await screenshot(page, 'cloud-sign-in-refused')
    assert.deepEqual(await context.cookies(), [], 'no session cookie after a refused sign-in')

    await signIn(page, password)
    await page.getByRole('heading', { name: 'Application tunnels' }).waitFor()
    const [cookie] = await context.cookies()
    assert.equal(cookie?.name, '__Host-apptunnel-console')
    assert.equal(cookie?.httpOnly, true)
    assert.equal(cookie?.secure, true)
    assert.equal(cookie?.sameSite, 'Strict')
    await page.getByText('No tunnels yet').waitFor()
    await screenshot(page, 'cloud-tunnels-empty')
  })

  test('a forged cross-site POST is refused: by the browser (SameSite) and by the server (Origin, CSRF token)', async () => {
    // An attacker's page on another site (localhost is another site than 127.0.0.1) posts a tunnel.
    attacker = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' }).end(`<!doctype html><form id="f" method="POST" action="${origin}/api/v1/tunnels" enctype="text/plain">
<input name='{"name":"forged","x":"' value='"}'></form><script>document.getElementById('f').submit()</script>`)
    })
    await new Promise<void>((r) => attacker.listen(0, '127.0.0.1', r))
    const attackerPort = (attacker.address() as { port: number }).port
    const forged = await context.newPage()
    await forged.goto(`http://localhost:${attackerPort}/`)
    await forged.waitForURL(`${origin}/api/v1/tunnels`)
    const answer = JSON.parse((await forged.textContent('body')) ?? '{}') as { error?: { code?: string } }
    assert.equal(answer.error?.code, 'TUN_ERR_AUTH_TOKEN_MISSING', 'the session cookie did not travel with the cross-site POST')
    await forged.close()

    // The same request with the stolen cookie itself is refused too, whatever else it carries.
    const cookie = (await context.cookies()).map((c) => `${c.name}=${c.value}`).join('; ')
    const session = JSON.parse((await consoleRequest(`${origin}/console/api/session`, server.certificatePem, { headers: { cookie } })).body) as { csrfToken: string }
    const post = (headers: Record<string, string>) =>
      consoleRequest(`${origin}/api/v1/tunnels`, server.certificatePem, { method: 'POST', headers: { cookie, 'content-type': 'application/json', ...headers }, body: '{"name":"forged"}' })
    const cases: Array<[string, Record<string, string>]> = [
      ['another origin, even with the token', { origin: `http://localhost:${attackerPort}`, 'sec-fetch-site': 'cross-site', 'x-csrf-token': session.csrfToken }],
      ['another port of the same host (same site)', { origin: 'https://127.0.0.1:1', 'sec-fetch-site': 'same-site', 'x-csrf-token': session.csrfToken }],
      ['our origin without the token', { origin, 'sec-fetch-site': 'same-origin' }],
      ['our origin with a wrong token', { origin, 'sec-fetch-site': 'same-origin', 'x-csrf-token': session.csrfToken.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')) }],
      ['no Origin at all', { 'x-csrf-token': session.csrfToken }],
    ]
    for (const [what, headers] of cases) {
      const res = await post(headers)
      assert.equal(res.status, 403, what)
      assert.match(res.body, /TUN_ERR_CONSOLE_CROSS_SITE/, what)
    }
    const login = await consoleRequest(`${origin}/console/api/session`, server.certificatePem, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: `http://localhost:${attackerPort}` },
      body: JSON.stringify({ username: 'admin', password }),
    })
    assert.equal(login.status, 403, 'a cross-site sign-in (login CSRF) is refused')
    const tunnels = await server.tunnels.list({ orgId: server.orgId, name: 'test', sourceAddress: '127.0.0.1' })
    assert.deepEqual(tunnels.map((t) => t.name), [], 'nothing was created')

    const ok = await post({ origin, 'sec-fetch-site': 'same-origin', 'x-csrf-token': session.csrfToken })
    assert.equal(ok.status, 201, 'the console’s own request, for contrast')
    await server.tunnels.delete({ orgId: server.orgId, name: 'test', sourceAddress: '127.0.0.1' }, (JSON.parse(ok.body) as { id: string }).id)
  })

  test('every answer carries the security headers', async () => {
    for (const path of ['/console/tunnels', '/console/assets/cloud-console.js', '/console/api/session']) {
      const res = await consoleRequest(`${origin}${path}`, server.certificatePem)
      assert.match(String(res.headers['content-security-policy']), /script-src 'self'.*frame-ancestors 'none'/, path)
      assert.equal(res.headers['x-frame-options'], 'DENY', path)
      assert.equal(res.headers['referrer-policy'], 'no-referrer', path)
      assert.equal(res.headers['x-content-type-options'], 'nosniff', path)
    }
  })

  test('the tunnel limit is explained when reached; linked products; a narrow window; sign out', async () => {
    await server.createTunnel('Jira DC connection')
    await server.createTunnel('Confluence DC')
    await page.goto(`${origin}/console/tunnels`)
    await page.getByText('the most it can have (2)').waitFor()
    assert.equal(await page.getByRole('button', { name: 'Create tunnel' }).isDisabled(), true)
    assert.equal(await page.getByRole('link', { name: 'Create tunnel' }).count(), 0, 'the link to the wizard is gone')
    await screenshot(page, 'cloud-tunnels-limit')

    await page.getByRole('link', { name: 'Jira DC connection' }).click()
    await page.getByRole('heading', { name: 'Jira DC connection' }).waitFor()
    await page.getByLabel('Product name').fill('Jira Cloud')
    await page.getByLabel('Allowed source blocks (optional)').fill('203.0.113.0/24')
    await page.getByRole('button', { name: 'Add linked product' }).click()
    await page.getByText(/^atp1_/).waitFor()
    await page.getByRole('button', { name: 'Copy credential' }).click()
    await page.getByRole('cell', { name: '203.0.113.0/24' }).waitFor()
    await screenshot(page, 'cloud-tunnel-details')

    await page.setViewportSize({ width: 360, height: 740 })
    await page.getByRole('link', { name: 'Application tunnels' }).click()
    await page.getByRole('link', { name: 'Confluence DC' }).waitFor()
    const width = await page.evaluate(() => document.documentElement.scrollWidth)
    assert.ok(width <= 360, `no horizontal scrolling at 360 px (page is ${width} px wide)`)
    await screenshot(page, 'cloud-tunnels-narrow')
    await page.setViewportSize({ width: 1200, height: 800 })

    await page.getByRole('button', { name: 'Sign out' }).click()
    await page.getByText('You have signed out.').waitFor()
    const cookie = (await context.cookies()).map((c) => `${c.name}=${c.value}`).join('; ')
    assert.equal(cookie, '', 'the cookie is cleared')
  })
})

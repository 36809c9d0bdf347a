import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { after, before, describe, test } from 'node:test'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import type { TunnelAgent } from '../src/agent/start-agent.ts'
import { consoleRequest, launchBrowser, newConsoleContext, screenshotWidths, seriousAxeViolations } from '../src/testing/console-browser.ts'
import { checkNoLeakedHandles } from '../src/testing/leak-check.ts'
import { startTcpForwarder, type TcpForwarder } from '../src/testing/tcp-forwarder.ts'
import { startTestUpstream, type TestUpstream } from '../src/testing/test-upstream.ts'
import { agentConnect } from '../src/testing/agent-connect.ts'
import { ingressRequest, startTestAgent, startTestServer, type TestServer } from '../src/testing/tunnel-harness.ts'

checkNoLeakedHandles()

/** WCAG contrast ratio of two CSS colours as the browser computed them (rgb()/rgba() strings). */
function contrast(a: string, b: string): number {
  const lum = (c: string) => {
    const [r, g, bl] = (c.match(/[\d.]+/g) ?? []).slice(0, 3).map((v) => {
      const x = Number(v) / 255
      return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4
    })
    return 0.2126 * r! + 0.7152 * g! + 0.0722 * bl!
  }
  const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x)
  return (hi! + 0.05) / (lo! + 0.05)
}

describe('cloud console when things go wrong, and what an admin needs to act (issue 19)', () => {
  let server: TestServer
  let upstream: TestUpstream
  let agent: TunnelAgent | undefined
  let front: TcpForwarder
  let browser: Browser
  let context: BrowserContext
  let page: Page
  let origin: string
  let password: string
  let connected: { id: string; key: string; hostHeader: string }

  before(async () => {
    server = await startTestServer({ orgName: 'Acme.inc' })
    upstream = await startTestUpstream()
    // The browser reaches the console through a forwarder the tests can cut: the server "goes away"
    // for the page while the test keeps using it.
    front = await startTcpForwarder(server.apiAddress.port)
    origin = front.url
    password = (await readFile(`${server.dataDir}/console-admin-password`, 'utf8')).trim()
    connected = await server.createTunnel('Jira DC connection')
    agent = await startTestAgent(connected.key, upstream.address, { nodeId: 'jira-node-1', instance: 'Jira DC (prod)', sessions: 2 })
    await agent.waitFor((s) => s.status === 'CONNECTED')
    browser = await launchBrowser()
    context = await newConsoleContext(browser, { width: 1280 })
    page = await context.newPage()
    await page.goto(`${origin}/console/`)
    await page.getByLabel('User name').fill('admin')
    await page.getByLabel('Password').fill(password)
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.getByRole('heading', { name: 'Application tunnels' }).waitFor()
  })

  after(async () => {
    await browser?.close()
    await agent?.close()
    await front?.close()
    await server?.dispose()
    await upstream?.close()
  })

  /** Every page: no serious or critical axe violation, and screenshots at 1280 and 375 px. */
  async function lookAt(name: string, state: 'healthy' | 'failing', on: Page = page): Promise<void> {
    const violations = await seriousAxeViolations(on)
    assert.deepEqual(violations.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`), [], `axe on ${name} (${state})`)
    for (const { width, scrollWidth } of await screenshotWidths(on, name, state)) assert.ok(scrollWidth <= width, `${name} (${state}) scrolls sideways at ${width} px (${scrollWidth} px wide)`)
  }

  test('1. a view that cannot reach the server says how old its data is and greys out the statuses', async () => {
    await page.goto(`${origin}/console/tunnels/${connected.id}`)
    const status = page.locator('#tunnel-status .status')
    await status.getByText('CONNECTED', { exact: true }).waitFor()
    await page.getByText(/Live: updated/).waitFor()
    const liveColour = await status.evaluate((e) => getComputedStyle(e).color)
    await lookAt('cloud-tunnel-details', 'healthy')

    front.pause()
    const freshness = page.locator('#freshness')
    await freshness.getByText(/cannot reach the server/).waitFor()
    assert.match((await freshness.textContent()) ?? '', /^Last updated \d+ s ago — cannot reach the server/)
    assert.notEqual(await status.evaluate((e) => getComputedStyle(e).color), liveColour, 'the CONNECTED badge is greyed out')
    assert.match(await status.evaluate((e) => getComputedStyle(e, '::after').content), /last known/)
    await page.waitForTimeout(1100)
    assert.match((await freshness.textContent()) ?? '', /Last updated [1-9]\d* s ago/, 'the age keeps counting')
    await lookAt('cloud-tunnel-details', 'failing')

    // The list, loaded while the server answers, then cut off.
    front.resume()
    await page.getByRole('link', { name: 'Application tunnels' }).click()
    const row = page.getByRole('row', { name: /Jira DC connection/ })
    await row.getByText('CONNECTED', { exact: true }).waitFor()
    front.pause()
    await page.locator('#freshness').getByText(/cannot reach the server/).waitFor()
    assert.equal(await page.locator('main[data-stale]').count(), 1)
    await lookAt('cloud-tunnels', 'failing')
    front.resume()
    await page.locator('#freshness').getByText(/Live: updated/).waitFor()
    assert.equal(await page.locator('main[data-stale]').count(), 0, 'fresh again once the server answers')
    await lookAt('cloud-tunnels', 'healthy')

    // A view whose first load fails keeps trying, and says so, rather than leaving a dead page.
    front.pause()
    await page.getByRole('link', { name: 'Jira DC connection' }).click()
    await page.locator('#freshness').getByText(/^Not loaded yet — cannot reach the server/).waitFor()
    front.resume()
    await page.locator('#tunnel-status').getByText('CONNECTED', { exact: true }).waitFor()
    await page.getByRole('heading', { name: 'Jira DC connection' }).waitFor()
    await page.getByRole('link', { name: 'Application tunnels' }).click()
  })

  test('3. the key page opens the on-prem console in a new tab and asks before an uncopied key is left behind', async () => {
    await page.getByRole('link', { name: 'Create tunnel' }).click()
    await page.getByLabel('Tunnel name').fill('Confluence DC')
    await page.getByLabel('On-prem console URL (optional)').fill(`${origin}/console/nowhere`)
    await lookAt('cloud-create', 'healthy')
    await page.getByRole('button', { name: 'Next: create the security key' }).click()
    const key = await page.getByLabel('Security key').inputValue()
    assert.match(key, /^atk1_/)
    const open = page.getByRole('link', { name: 'Open the on-prem console to add the key' })
    assert.equal(await open.getAttribute('target'), '_blank')
    const [tab] = await Promise.all([context.waitForEvent('page'), open.click()])
    await tab.close()
    assert.equal(await page.getByLabel('Security key').inputValue(), key, 'the key is still on the page that opened the tab')
    await lookAt('cloud-security-key', 'healthy')

    // A link inside the console asks first; staying keeps the key.
    await page.getByRole('link', { name: 'Application tunnels' }).click()
    const ask = page.getByRole('dialog')
    await ask.getByText('Leave without the security key?').waitFor()
    await ask.getByRole('button', { name: 'Stay on this page' }).click()
    assert.equal(await page.getByLabel('Security key').inputValue(), key)
    // Back asks too, and closing the tab (or a reload) gets the browser's own question.
    await page.goBack()
    await ask.getByText('Leave without the security key?').waitFor()
    await ask.getByRole('button', { name: 'Stay on this page' }).click()
    assert.equal(await page.getByLabel('Security key').inputValue(), key)
    const beforeUnload = new Promise<string>((resolve) => page.once('dialog', (d) => { resolve(d.type()); void d.dismiss() }))
    await page.close({ runBeforeUnload: true })
    assert.equal(await beforeUnload, 'beforeunload')
    assert.equal(page.isClosed(), false, 'the tab stays open')
    assert.equal(await page.getByLabel('Security key').inputValue(), key)

    // Once copied, leaving is free.
    await page.getByRole('button', { name: 'Copy key' }).click()
    await page.getByRole('link', { name: 'Application tunnels' }).click()
    await page.getByRole('row', { name: /Confluence DC/ }).waitFor()
    assert.equal(await page.getByRole('dialog').count(), 0)
  })

  test('4. Escape and a click outside close the ⋯ menu; a closed dialog gives focus back to the menu button', async () => {
    const row = page.getByRole('row', { name: /Jira DC connection/ })
    const button = row.getByLabel('Actions for Jira DC connection')
    const menu = row.locator('details.menu')
    await button.click()
    assert.equal(await menu.getAttribute('open'), '')
    await page.keyboard.press('Escape')
    assert.equal(await menu.getAttribute('open'), null, 'Escape closes the menu')
    assert.equal(await button.evaluate((e) => e === document.activeElement), true, 'focus is back on the menu button')

    await button.click()
    await page.getByRole('heading', { name: 'Application tunnels' }).click()
    assert.equal(await menu.getAttribute('open'), null, 'a click outside closes it')

    await button.click()
    await page.getByRole('button', { name: 'View application link URL' }).click()
    await page.getByRole('dialog').getByRole('button', { name: 'Close' }).click()
    // The dialog's close event, which gives focus back, is a task of its own after the click.
    await page.waitForFunction((e) => e === document.activeElement, await button.elementHandle(), { timeout: 5000 }).catch(() => {})
    assert.equal(await button.evaluate((e) => e === document.activeElement), true, 'closing the dialog gives focus back')
    await button.click()
    await page.getByRole('button', { name: 'Delete' }).click()
    await page.keyboard.press('Escape')
    assert.equal(await page.getByRole('dialog').count(), 0)
    assert.equal(await button.evaluate((e) => e === document.activeElement), true, 'cancelling the delete gives focus back')
  })

  test('7. errors in the form’s words, on the right field; notices that go away; a console not-found page; one date format', async () => {
    await page.getByRole('link', { name: 'Create tunnel' }).click()
    await page.getByLabel('Tunnel name').fill('Bitbucket DC')
    const url = page.getByLabel('On-prem console URL (optional)')
    await url.fill('onprem:9443')
    await page.getByRole('button', { name: 'Next: create the security key' }).click()
    const alert = page.locator('#create-error')
    await alert.getByText(/as an https:\/\/ URL/).waitFor()
    assert.doesNotMatch((await alert.textContent()) ?? '', /TUN_ERR|instance URL must/)
    assert.equal(await url.getAttribute('aria-invalid'), 'true')
    assert.equal(await page.getByLabel('Tunnel name').getAttribute('aria-invalid'), null)
    await lookAt('cloud-create', 'failing')
    await page.getByRole('link', { name: 'Cancel' }).click()

    await page.getByRole('link', { name: 'Jira DC connection' }).click()
    await page.getByLabel('Product name').fill('Jira Cloud')
    const cidrs = page.getByLabel('Allowed source blocks (optional)')
    await cidrs.fill('203.0.113.0/99')
    await page.getByRole('button', { name: 'Add linked product' }).click()
    await page.locator('#product-error').getByText(/prefix length/).waitFor()
    assert.equal(await cidrs.getAttribute('aria-invalid'), 'true', 'the CIDR field is marked')
    assert.equal(await page.getByLabel('Product name').getAttribute('aria-invalid'), null, 'not the name')
    await lookAt('cloud-tunnel-details-product-error', 'failing')
    await cidrs.fill('203.0.113.0/24')
    await page.getByLabel('Issue a credential (sent in the X-Apptunnel-Credential header)').uncheck()
    await page.getByRole('button', { name: 'Add linked product' }).click()
    await page.getByText('Jira Cloud added.').waitFor()
    assert.equal(await cidrs.getAttribute('aria-invalid'), null, 'the earlier error is cleared')
    await page.getByRole('button', { name: 'Remove linked product Jira Cloud' }).click()
    const dialog = page.getByRole('dialog')
    await dialog.getByText('203.0.113.0/24').waitFor()
    assert.doesNotMatch((await dialog.textContent()) ?? '', /credential/i, 'a product without a credential has none to stop')
    await dialog.getByRole('button', { name: 'Remove' }).click()
    await page.getByText('Jira Cloud removed.').waitFor()
    assert.equal(await page.getByText('Jira Cloud added.').count(), 0, 'the "added" notice is gone')

    const notFound = await consoleRequest(`${origin}/console/nope`, server.certificatePem, { headers: { accept: 'text/html' } })
    assert.equal(notFound.status, 404)
    assert.match(String(notFound.headers['content-type']), /text\/html/)
    await page.goto(`${origin}/console/nope`)
    await page.getByRole('heading', { name: 'Page not found' }).waitFor()
    await lookAt('cloud-not-found', 'failing')

    // A reason with a time in it shows it like every other date on the page.
    await agent!.close()
    agent = undefined
    await page.goto(`${origin}/console/tunnels/${connected.id}`)
    await page.locator('#tunnel-status').getByText('UNAVAILABLE', { exact: true }).waitFor().catch(async (err: Error) => {
      const sessions = server.registry.sessionsOf(connected.id).map((x) => `${x.info.nodeId} live=${x.isLive} closed=${x.closed}`)
      throw new Error(`${err.message}\nthe page says: ${await page.locator('#tunnel-status').textContent()} / ${await page.locator('#freshness').textContent()}\nserver sessions: ${sessions.join(', ')}`)
    })
    await page.locator('#tunnel-status').getByText(/no agent connected since/).waitFor()
    assert.doesNotMatch((await page.locator('main').textContent()) ?? '', /\d{4}-\d\d-\d\dT\d\d:\d\d/, 'no ISO timestamps among local dates')
    const hint = (await page.locator('#status-hint').textContent()) ?? ''
    assert.match(hint, new RegExp(`on port ${server.apiAddress.port}\\b`), 'the hint names the real port')
    assert.doesNotMatch(hint, /\b443\b/)

    // Sign-in: an error on one field does not stay on it after a later attempt.
    const other = await context.newPage()
    await other.context().clearCookies()
    await other.goto(`${origin}/console/`)
    await other.getByLabel('User name').waitFor()
    await lookAt('cloud-sign-in', 'healthy', other)
    await other.getByRole('button', { name: 'Sign in' }).click()
    assert.equal(await other.getByLabel('User name').getAttribute('aria-invalid'), 'true')
    await other.getByLabel('User name').fill('admin')
    await other.getByLabel('Password').fill('not the password')
    await other.getByRole('button', { name: 'Sign in' }).click()
    await other.getByText('the user name or password is wrong').waitFor()
    await lookAt('cloud-sign-in', 'failing', other)
    assert.equal(await other.getByLabel('User name').getAttribute('aria-invalid'), null, 'the user name is no longer marked')
    await other.close()
    // The page's own session was signed out with the cleared cookies: sign in again.
    await page.goto(`${origin}/console/tunnels`)
    await page.getByLabel('User name').fill('admin')
    await page.getByLabel('Password').fill(password)
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.getByRole('heading', { name: 'Application tunnels' }).waitFor()
  })

  test('11. buttons and the focus ring stand out (3:1), no ring around headings, UNAVAILABLE has its own colour, the instance column names the instance', async () => {
    await agent?.close()
    agent = await startTestAgent(connected.key, upstream.address, { nodeId: 'jira-node-1', instance: 'Jira DC (prod)' })
    await page.goto(`${origin}/console/tunnels`)
    const row = page.getByRole('row', { name: /Jira DC connection/ })
    await row.getByText('CONNECTED', { exact: true }).waitFor({ timeout: 8000 })
    assert.equal(await row.getByRole('cell', { name: /Jira DC \(prod\)/ }).count(), 1, 'the instance that is connected')
    const heading = page.getByRole('heading', { name: 'Application tunnels' })
    assert.equal(await heading.evaluate((e) => e === document.activeElement), true)
    assert.equal(await heading.evaluate((e) => getComputedStyle(e).outlineStyle), 'none', 'no box around the focused heading')

    const signOut = page.getByRole('button', { name: 'Sign out' })
    const [border, background] = await signOut.evaluate((e) => [getComputedStyle(e).borderTopColor, getComputedStyle(e.closest('header')!).backgroundColor])
    assert.ok(contrast(border!, background!) >= 3, `secondary button border ${border} on ${background}: ${contrast(border!, background!).toFixed(2)}:1`)
    await page.keyboard.press('Tab')
    await page.keyboard.press('Tab')
    const ring = await page.evaluate(() => {
      const e = document.activeElement!
      return [getComputedStyle(e).outlineColor, getComputedStyle(e).outlineStyle]
    })
    assert.equal(ring[1], 'solid', 'a keyboard focus shows a ring')
    assert.ok(contrast(ring[0]!, 'rgb(255, 255, 255)') >= 3, `focus ring ${ring[0]}: ${contrast(ring[0]!, 'rgb(255, 255, 255)').toFixed(2)}:1`)
    const colours = await page.evaluate(() =>
      ['LIMITED', 'UNAVAILABLE'].map((s) => {
        const e = document.createElement('span')
        e.className = `status status-${s}`
        document.body.append(e)
        const c = getComputedStyle(e).backgroundColor
        e.remove()
        return c
      }),
    )
    assert.notEqual(colours[0], colours[1], 'UNAVAILABLE is not LIMITED’s amber')
  })

  test('8. the key page shows the commands that add the key and start an agent, with the app address typed in', async () => {
    await page.getByRole('link', { name: 'Create tunnel' }).click()
    await page.getByLabel('Tunnel name').fill('Bamboo DC')
    await page.getByRole('button', { name: 'Next: create the security key' }).click()
    const key = await page.getByLabel('Security key').inputValue()
    await page.getByLabel('Address of the on-prem app, as the node reaches it').fill('10.0.0.5:8085')
    assert.equal(await page.locator('#cmd-key-add').textContent(), `apptunnel key add ${key} --database /var/lib/apptunnel/instance.db`)
    assert.equal(await page.locator('#cmd-agent').textContent(), `apptunnel agent --key ${key} --upstream 10.0.0.5:8085`)
    await page.locator('.command').filter({ has: page.locator('#cmd-agent') }).getByRole('button', { name: 'Copy command' }).click()
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), `apptunnel agent --key ${key} --upstream 10.0.0.5:8085`)
    await page.getByRole('button', { name: 'Copy key' }).click()
  })

  test('10. API tokens, the audit log, the account’s password; search and sort of the tunnel list', async () => {
    await page.getByRole('link', { name: 'Application tunnels' }).click()
    await page.getByRole('row', { name: /Bamboo DC/ }).waitFor()
    const names = async () => (await page.locator('tbody tr td:first-child').allTextContents()).filter(Boolean)
    assert.deepEqual(await names(), ['Bamboo DC', 'Confluence DC', 'Jira DC connection'], 'by name')
    await page.getByLabel('Sort by').selectOption('status')
    assert.equal((await names())[2], 'Jira DC connection', 'problems first: the connected one last')
    await page.getByLabel('Search tunnels').fill('conf')
    assert.deepEqual(await names(), ['Confluence DC'])
    await page.getByText('1 of 3 tunnels match').waitFor()
    await lookAt('cloud-tunnels-search', 'healthy')
    await page.getByLabel('Search tunnels').fill('')

    await page.getByRole('link', { name: 'API tokens' }).click()
    await page.getByRole('heading', { name: 'API tokens' }).waitFor()
    const first = page.getByRole('row').filter({ has: page.getByRole('button', { name: /^Revoke token/ }) })
    await first.first().waitFor()
    assert.equal(await first.count(), 1, 'the bootstrap token')
    await page.getByRole('button', { name: /^Revoke token/ }).click()
    await page.getByRole('dialog').getByRole('button', { name: 'Revoke token' }).click()
    await page.locator('#token-error').getByText(/last API token: create another one/).waitFor()
    await lookAt('cloud-tokens', 'failing')
    await page.getByLabel('Token name').fill('deploy pipeline')
    await page.getByRole('button', { name: 'Create token' }).click()
    const value = (await page.locator('#token-value').textContent())!
    assert.equal(await consoleRequest(`${origin}/api/v1/tunnels`, server.certificatePem, { headers: { authorization: `Bearer ${value}` } }).then((r) => r.status), 200, 'the new token works')
    await page.getByRole('button', { name: 'Copy token' }).click()
    await lookAt('cloud-tokens', 'healthy')
    await page.getByRole('button', { name: 'Revoke token deploy pipeline' }).click()
    await page.getByRole('dialog').getByRole('button', { name: 'Revoke token' }).click()
    await page.getByRole('button', { name: 'Revoke token deploy pipeline' }).waitFor({ state: 'detached' })

    await page.getByRole('link', { name: 'Audit log' }).click()
    await page.getByRole('cell', { name: 'token.create' }).first().waitFor()
    await page.getByLabel('Filter events').fill('tunnel.create')
    assert.ok((await page.getByRole('cell', { name: 'tunnel.create' }).count()) >= 3)
    assert.equal(await page.getByRole('cell', { name: 'token.create' }).count(), 0)
    await lookAt('cloud-audit', 'healthy')

    await page.getByRole('link', { name: 'Account' }).click()
    await page.getByLabel('Current password').fill('not the password')
    await page.getByLabel('New password', { exact: true }).fill('a brand new passphrase')
    await page.getByLabel('New password again').fill('a brand new passphrase')
    await page.getByRole('button', { name: 'Change password' }).click()
    await page.locator('#password-error').getByText('The current password is wrong.').waitFor()
    await lookAt('cloud-account', 'failing')
    await page.getByLabel('Current password').fill(password)
    await page.getByRole('button', { name: 'Change password' }).click()
    await page.getByText('Password changed.').waitFor()
    await lookAt('cloud-account', 'healthy')
    const signIn = (pw: string) =>
      consoleRequest(`${origin}/console/api/session`, server.certificatePem, { method: 'POST', headers: { origin, 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: pw }) })
    assert.equal((await signIn(password)).status, 401, 'the old password no longer works')
    assert.equal((await signIn('a brand new passphrase')).status, 200)
    // This browser stays signed in (a fresh session), and its CSRF token still works.
    await page.getByRole('link', { name: 'API tokens' }).click()
    await page.getByLabel('Token name').fill('after the change')
    await page.getByRole('button', { name: 'Create token' }).click()
    await page.locator('#token-value').waitFor()
    await page.getByRole('button', { name: 'Copy token' }).click()
  })

  test('9. a tunnel’s last hour: requests per minute, error rate, bytes, sessions per node, and the last events', async () => {
    await agent?.close()
    agent = await startTestAgent(connected.key, upstream.address, { nodeId: 'jira-node-1', instance: 'Jira DC (prod)', sessions: 2 })
    await agent.waitFor((s) => s.status === 'CONNECTED' && s.sessions === 2)
    for (let i = 0; i < 3; i++) assert.equal((await ingressRequest(server.ingressAddress, connected.hostHeader)).status, 200)
    const refused = await agentConnect(server, connected.id, Buffer.alloc(32, 7))
    assert.equal(refused.code, 'TUN_ERR_KEY_REJECTED')
    await agent.close()
    agent = undefined
    assert.equal((await ingressRequest(server.ingressAddress, connected.hostHeader)).status, 503)

    await page.goto(`${origin}/console/tunnels/${connected.id}`)
    const requests = page.locator('#activity-requests')
    await requests.getByText('4 requests; error rate 25.0 % (1 answered 5xx, in red)').waitFor({ timeout: 8000 })
    assert.equal(await requests.locator('rect.chart-bar').count() >= 1, true, 'a bar for the minute')
    assert.equal(await requests.locator('rect.chart-bar-error').count() >= 1, true, 'its error share')
    assert.match((await page.locator('#activity-bytes .help').textContent()) ?? '', /^[1-9]\d*(\.\d)? (B|KiB) from callers, [1-9]\d*(\.\d)? (B|KiB) to them$/)
    await page.locator('#activity-sessions').getByText('jira-node-1: 0 now').waitFor()
    assert.equal(await page.locator('#activity-sessions polyline').count(), 1, 'one line for the one node')
    const events = page.locator('#tunnel-events tbody')
    await events.getByRole('cell', { name: 'Key rejected' }).first().waitFor()
    assert.ok((await events.getByRole('cell', { name: 'Connected' }).count()) >= 2, 'both sessions connected')
    assert.ok((await events.getByRole('cell', { name: 'Disconnected' }).count()) >= 2)
    await events.getByText(/security key was rejected: the secret does not match this tunnel \(TUN_ERR_KEY_REJECTED\)/).waitFor()
    assert.equal(await page.locator('svg image, svg use, svg foreignObject').count(), 0, 'nothing outside the page')
    await lookAt('cloud-tunnel-activity', 'failing')
  })
})

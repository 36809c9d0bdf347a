import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { Browser, Page } from 'playwright-core'
import { startAgent, type TunnelAgent } from '../src/agent/start-agent.ts'
import { InstanceAdmin } from '../src/agent/instance/instance-admin.ts'
import { loadAgentConfig, type AgentConfigInput } from '../src/config/agent-config.ts'
import { InstanceNodeRepository, openDatabase, type Database } from '../src/store/index.ts'
import { CLI } from '../src/testing/cli-runner.ts'
import { launchBrowser, newConsoleContext, screenshotWidths, seriousAxeViolations } from '../src/testing/console-browser.ts'
import { checkNoLeakedHandles } from '../src/testing/leak-check.ts'
import { startTcpForwarder, type TcpForwarder } from '../src/testing/tcp-forwarder.ts'
import { startTestUpstream, type TestUpstream } from '../src/testing/test-upstream.ts'
import { instanceNodeConfig, startTestServer, type TestServer } from '../src/testing/tunnel-harness.ts'

checkNoLeakedHandles()

const LONG_NODE = 'jira-datacenter-node-b-with-a-long-identifier'

describe('instance console when things go wrong, and what an admin needs to act (issue 19)', () => {
  let server: TestServer
  let upstream: TestUpstream
  let root: string
  let dbFile: string
  let database: Database
  let admin: InstanceAdmin
  let front: TcpForwarder
  let browser: Browser
  let page: Page
  let origin: string
  let password: string
  const nodes = new Map<string, TunnelAgent>()

  const nodeConfig = (name: string, extra: Partial<AgentConfigInput> = {}): AgentConfigInput => instanceNodeConfig(name, { upstream: upstream.address, database: dbFile, root }, extra)

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'apptunnel-console-admin-'))
    dbFile = join(root, 'instance.db')
    server = await startTestServer({ orgName: 'Acme.inc' })
    upstream = await startTestUpstream()
    nodes.set('node-a', await startAgent(loadAgentConfig(nodeConfig('node-a', { consoleListen: '127.0.0.1:0', clusterListen: '127.0.0.1:0', clusterHeartbeatMs: 200 }))))
    nodes.set(LONG_NODE, await startAgent(loadAgentConfig(nodeConfig(LONG_NODE))))
    database = await openDatabase(dbFile)
    admin = new InstanceAdmin(database)
    front = await startTcpForwarder(nodes.get('node-a')!.instanceConsole!.address.port)
    origin = front.url
    password = (await readFile(join(root, 'node-a', 'console-admin-password'), 'utf8')).trim()
    browser = await launchBrowser()
    page = await (await newConsoleContext(browser, { width: 1280 })).newPage()
    await page.goto(`${origin}/`)
    await page.getByLabel('User name').waitFor()
    await lookAt('onprem-sign-in', 'healthy')
    await page.getByLabel('User name').fill('admin')
    await page.getByLabel('Password').fill('not the password')
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.getByText('the user name or password is wrong').waitFor()
    await lookAt('onprem-sign-in', 'failing')
    await page.getByLabel('Password').fill(password)
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.getByText('No security key has been added to this instance').waitFor()
    await lookAt('onprem-tunnels-no-key', 'healthy')
    await admin.addKey((await server.createTunnel('Confluence DC')).key, 'test')
  })

  after(async () => {
    await browser?.close()
    for (const n of nodes.values()) await n.close()
    await database?.close()
    await front?.close()
    await server?.dispose()
    await upstream?.close()
    await rm(root, { recursive: true, force: true })
  })

  /** Every page: no serious or critical axe violation, and screenshots at 1280 and 375 px. */
  async function lookAt(name: string, state: 'healthy' | 'failing'): Promise<void> {
    const violations = await seriousAxeViolations(page)
    assert.deepEqual(violations.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`), [], `axe on ${name} (${state})`)
    for (const { width, scrollWidth } of await screenshotWidths(page, name, state)) assert.ok(scrollWidth <= width, `${name} (${state}) scrolls sideways at ${width} px (${scrollWidth} px wide)`)
  }

  test('8, 11. the nodes page marks the node serving the console, keeps node ids on one line, and shows the command to start a node', async () => {
    const row = page.getByRole('row', { name: /Confluence DC/ })
    await row.getByText('CONNECTED', { exact: true }).waitFor({ timeout: 8000 })
    await lookAt('onprem-tunnels', 'healthy')
    await page.getByRole('link', { name: 'Cluster nodes', exact: true }).click()
    const self = page.getByRole('row', { name: /node-a/ })
    await self.getByText('CONNECTED', { exact: true }).waitFor()
    assert.equal(await self.getByText('this console').count(), 1, 'the node serving the console is marked')
    await self.getByRole('cell', { name: new RegExp(`console 127\\.0\\.0\\.1:${front.port}`) }).waitFor()
    await self.getByText(/^cluster bus 127\.0\.0\.1:\d+$/).waitFor()
    assert.equal(await page.getByRole('row', { name: new RegExp(LONG_NODE) }).getByText('this console').count(), 0)
    const id = page.getByRole('row', { name: new RegExp(LONG_NODE) }).locator('th span').first()
    const [height, line] = await id.evaluate((e) => [e.getBoundingClientRect().height, parseFloat(getComputedStyle(e).lineHeight)])
    assert.ok(height! < line! * 1.5, `the node id stays on one line at 1280 px (${height} px high, line ${line} px)`)
    assert.equal(await page.locator('#node-command').textContent(), `apptunnel agent --database ${dbFile} --upstream ${upstream.address} --data-dir /var/lib/apptunnel/NODE-NAME`)
    await lookAt('onprem-nodes', 'healthy')
  })

  test('2, 8. a refresh while a node is down keeps the ⋯ menu open and focus where it is; the command that starts that node', async () => {
    // A node that died without saying so: its reason ("no heartbeat for N s") changes every second.
    const heartbeatAt = new Date(Date.now() - 30_000).toISOString()
    await new InstanceNodeRepository(database).report({
      nodeId: 'node-crashed', address: 'jira-3', version: '0.1.0', startedAt: heartbeatAt, heartbeatAt, heartbeatMs: 200,
      tunnelId: null, status: null, reason: 'waiting for a security key', code: null, statusSince: heartbeatAt, sessions: 0, sessionsWanted: 0,
    })
    await page.getByRole('link', { name: 'Application tunnels' }).click()
    const row = page.getByRole('row', { name: /Confluence DC/ })
    await row.getByText('LIMITED', { exact: true }).waitFor({ timeout: 8000 })
    const reason = page.locator('#instance-status .reason')
    const before = await reason.textContent()
    assert.match(before ?? '', /no heartbeat for \d+ s/)
    await row.getByLabel('Actions for Confluence DC').click()
    await page.keyboard.press('Tab')
    const item = page.getByRole('button', { name: 'Remove security key' })
    assert.equal(await item.evaluate((e) => e === document.activeElement), true)
    // The reason changed: a refresh redrew what changed, and nothing else.
    await page.waitForFunction((was) => document.querySelector('#instance-status .reason')?.textContent !== was, before)
    assert.equal(await row.locator('details.menu').getAttribute('open'), '', 'the menu is still open after the refreshes')
    assert.equal(await item.evaluate((e) => e === document.activeElement), true, 'focus is still on the menu item')
    await lookAt('onprem-tunnels-limited', 'failing')
    await page.keyboard.press('Escape')

    await page.getByRole('link', { name: 'Cluster nodes', exact: true }).click()
    const remove = page.getByRole('button', { name: 'Remove node node-crashed' })
    await remove.focus()
    const crashed = page.locator('tr[data-node-id="node-crashed"] td[data-label="Status"] .reason')
    const was = await crashed.textContent()
    await page.waitForFunction((w) => document.querySelector('tr[data-node-id="node-crashed"] td[data-label="Status"] .reason')?.textContent !== w, was)
    assert.equal(await remove.evaluate((e) => e === document.activeElement), true, 'focus stays on Remove while the row updates')
    await lookAt('onprem-nodes', 'failing')
    assert.equal(await page.locator('#node-command-node-crashed').textContent(), `apptunnel agent --database ${dbFile} --upstream ${upstream.address} --node-id node-crashed`, 'the command that starts the node that is down')
    await remove.focus()
    await page.keyboard.press('Enter')
    await page.getByRole('dialog').getByRole('button', { name: 'Remove node' }).click()
    await page.getByRole('row', { name: /node-crashed/ }).waitFor({ state: 'detached' })
    await page.locator('#node-command-node-crashed').waitFor({ state: 'detached' })
  })

  test('1. a view that cannot reach its node says how old its data is and greys out the statuses', async () => {
    await page.getByRole('link', { name: 'Cluster nodes', exact: true }).click()
    const self = page.getByRole('row', { name: /node-a/ })
    await self.getByText('CONNECTED', { exact: true }).waitFor()
    const badge = self.locator('.status')
    const liveColour = await badge.evaluate((e) => getComputedStyle(e).color)
    front.pause()
    await page.locator('#freshness').getByText(/^Last updated \d+ s ago — cannot reach the server/).waitFor()
    assert.notEqual(await badge.evaluate((e) => getComputedStyle(e).color), liveColour, 'greyed out')
    await lookAt('onprem-nodes-unreachable', 'failing')
    front.resume()
    await page.locator('#freshness').getByText(/Live: updated/).waitFor()
  })

  test('7. the console’s own not-found page; reasons show dates like every other date', async () => {
    await page.goto(`${origin}/nope`)
    await page.getByRole('heading', { name: 'Page not found' }).waitFor()
    await lookAt('onprem-not-found', 'failing')
    await nodes.get(LONG_NODE)!.close()
    nodes.delete(LONG_NODE)
    await page.goto(`${origin}/nodes`)
    await page.getByRole('row', { name: new RegExp(LONG_NODE) }).getByText(/node stopped at/).waitFor()
    assert.doesNotMatch((await page.locator('main').textContent()) ?? '', /\d{4}-\d\d-\d\dT\d\d:\d\d/, 'no ISO timestamps among local dates')
    await page.getByRole('button', { name: `Remove node ${LONG_NODE}` }).click()
    await page.getByRole('dialog').getByRole('button', { name: 'Remove node' }).click()
    await page.getByRole('row', { name: new RegExp(LONG_NODE) }).waitFor({ state: 'detached' })
  })

  test('5, 6. a deleted tunnel’s key is "well-formed", not "valid"; the last step follows the real status; the hint names the cause, as key status does', async () => {
    await admin.removeKey()
    const doomed = await server.createTunnel('Doomed')
    await server.tunnels.delete({ orgId: server.orgId, name: 'test', sourceAddress: '127.0.0.1' }, doomed.id)
    await page.getByRole('link', { name: 'Application tunnels' }).click()
    await page.getByRole('link', { name: 'Add security key' }).click()
    await page.getByLabel('Security key').fill('atk1_not-a-key')
    await page.getByRole('button', { name: 'Next' }).click()
    await page.getByRole('alert').getByText('security key is malformed').waitFor()
    await lookAt('onprem-add-key', 'failing')
    await page.getByLabel('Security key').fill(doomed.key)
    await page.getByRole('button', { name: 'Next' }).click()
    await page.getByText('The key is well-formed').waitFor()
    assert.equal(await page.getByText('The key is valid').count(), 0)
    await lookAt('onprem-confirm', 'healthy')
    await page.getByRole('button', { name: 'Add security key' }).click()
    await page.getByRole('heading', { name: 'The key was refused' }).waitFor({ timeout: 8000 })
    const status = page.locator('#connect-status')
    await status.getByText('ERROR', { exact: true }).waitFor()
    assert.doesNotMatch((await status.textContent()) ?? '', /are connecting/, 'no "connecting" over an ERROR')
    const hint = (await page.locator('#status-hint').textContent())!
    assert.match(hint, /deleted in the cloud console/)
    assert.doesNotMatch(hint, /add the security key again/i)
    await lookAt('onprem-connect', 'failing')

    const cli = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, [CLI, 'key', 'status', '--database', dbFile], { timeout: 30_000 }, (err, stdout) => (err !== null && stdout === '' ? reject(err) : resolve(stdout))),
    )
    assert.ok(cli.includes(hint), `apptunnel key status prints the same hint:\n${cli}`)
  })

  test('10. the instance audit log and the account’s password', async () => {
    await page.getByRole('link', { name: 'Audit log' }).click()
    await page.getByRole('cell', { name: 'console.login' }).first().waitFor()
    // The last step of the key wizard polls the status every second; leaving it ends that poll. One
    // left running asked on every later page, and a request of it made while the password below
    // changes carried the old session and signed the page out.
    const polledAfterLeaving = page.waitForRequest((r) => new URL(r.url()).pathname === '/api/v1/instance/status', { timeout: 3000 }).then(() => true, () => false)
    await lookAt('onprem-audit', 'healthy')
    assert.equal(await polledAfterLeaving, false, 'the status poll of the key wizard ends when the page is left')
    await page.getByRole('link', { name: 'Account' }).click()
    await page.getByLabel('Current password').fill(password)
    await page.getByLabel('New password', { exact: true }).fill('short')
    await page.getByLabel('New password again').fill('short')
    await page.getByRole('button', { name: 'Change password' }).click()
    await page.locator('#password-error').getByText('at least 12 characters').waitFor()
    await lookAt('onprem-account', 'failing')
    await page.getByLabel('New password', { exact: true }).fill('an instance passphrase')
    await page.getByLabel('New password again').fill('an instance passphrase')
    await page.getByRole('button', { name: 'Change password' }).click()
    await page.getByText('Password changed.').waitFor().catch(async (err: Error) => {
      throw new Error(`${err.message}\nthe page says: ${(await page.locator('#password-error').textContent()) ?? ''}`)
    })
    await lookAt('onprem-account', 'healthy')
  })
})

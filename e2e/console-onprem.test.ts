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
import { openDatabase, type Database } from '../src/store/index.ts'
import { CLI } from '../src/testing/cli-runner.ts'
import { consoleRequest, launchBrowser, newConsoleContext, screenshot } from '../src/testing/console-browser.ts'
import { checkNoLeakedHandles } from '../src/testing/leak-check.ts'
import { startTestUpstream, type TestUpstream } from '../src/testing/test-upstream.ts'
import { instanceNodeConfig, startTestServer, type TestServer } from '../src/testing/tunnel-harness.ts'

checkNoLeakedHandles()

describe('on-prem instance console in Chromium (issue 7)', () => {
  let server: TestServer
  let upstream: TestUpstream
  let root: string
  let dbFile: string
  let database: Database
  let browser: Browser
  let page: Page
  const nodes = new Map<string, TunnelAgent>()

  const nodeConfig = (name: string, extra: Partial<AgentConfigInput> = {}): AgentConfigInput => instanceNodeConfig(name, { upstream: upstream.address, database: dbFile, root }, extra)

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'apptunnel-onprem-console-'))
    dbFile = join(root, 'instance.db')
    server = await startTestServer({ orgName: 'Acme.inc' })
    upstream = await startTestUpstream()
    nodes.set('node-a', await startAgent(loadAgentConfig(nodeConfig('node-a', { consoleListen: '127.0.0.1:0' }))))
    nodes.set('node-b', await startAgent(loadAgentConfig(nodeConfig('node-b'))))
    database = await openDatabase(dbFile)
    browser = await launchBrowser()
    page = await (await newConsoleContext(browser)).newPage()
  })

  after(async () => {
    await browser?.close()
    for (const n of nodes.values()) await n.close()
    await database?.close()
    await server?.dispose()
    await upstream?.close()
    await rm(root, { recursive: true, force: true })
  })

  test('a node without a database or data directory cannot serve a console', () => {
    assert.throws(() => loadAgentConfig({ upstream: '127.0.0.1:1', key: undefined, database: undefined, nodeId: 'x', consoleListen: '127.0.0.1:0' } as AgentConfigInput), /database/)
    assert.throws(() => loadAgentConfig({ upstream: '127.0.0.1:1', database: dbFile, nodeId: 'x', consoleListen: '127.0.0.1:0' }), /consoleListen: the console needs --data-dir/)
  })

  test('sign in, then a bad key is refused with a clear error in the Add security key wizard', async () => {
    const consoleNode = nodes.get('node-a')!
    assert.ok(consoleNode.instanceConsole !== undefined)
    const password = (await readFile(join(root, 'node-a', 'console-admin-password'), 'utf8')).trim()
    await page.goto(consoleNode.instanceConsole.url)
    await page.getByLabel('User name').fill('admin')
    await page.getByLabel('Password').fill(password)
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.getByRole('heading', { name: 'Application tunnels' }).waitFor()
    await page.getByText('No security key has been added to this instance').waitFor()
    await screenshot(page, 'onprem-tunnels-empty')

    await page.getByRole('link', { name: 'Add security key' }).click()
    const field = page.getByLabel('Security key')
    await field.fill('atk1_this-is-not-a-key')
    await page.getByRole('button', { name: 'Next' }).click()
    const alert = page.getByRole('alert')
    await alert.getByText('security key is malformed').waitFor()
    assert.match((await alert.textContent()) ?? '', /TUN_ERR_KEY_MALFORMED/)
    assert.equal(await field.getAttribute('aria-invalid'), 'true')
    await screenshot(page, 'onprem-add-key-bad')

    const valid = (await server.createTunnel('Jira DC connection')).key
    await field.fill(valid.slice(0, -3))
    await page.getByRole('button', { name: 'Next' }).click()
    await alert.getByText(/checksum|truncated|malformed/).waitFor()
    assert.equal((await new InstanceAdmin(database).status()).tunnel, null, 'nothing was stored')
  })

  test('a key added elsewhere shows CONNECTED live; a stopped node makes it LIMITED with the hint; the nodes view retires it', async () => {
    const tunnel = await server.createTunnel('Confluence DC')
    await page.getByRole('link', { name: 'Application tunnels' }).click()
    await page.getByText('No security key has been added to this instance').waitFor()
    // Added by the CLI's service, not the page: the page must notice without a reload.
    await new InstanceAdmin(database).addKey(tunnel.key, 'test')
    const row = page.getByRole('row', { name: /Confluence DC/ })
    await row.getByText('CONNECTED', { exact: true }).waitFor({ timeout: 8000 })
    await row.getByText('Acme.inc').waitFor()
    await page.getByText(new URL(tunnel.applicationLinkUrl).host).waitFor()
    await page.getByText('The tunnel is connected and working').waitFor()
    await screenshot(page, 'onprem-tunnels-connected')

    await nodes.get('node-b')!.close()
    nodes.delete('node-b')
    await row.getByText('LIMITED', { exact: true }).waitFor({ timeout: 8000 })
    await page.getByText('Some nodes are not connected to the tunnel').waitFor()
    await screenshot(page, 'onprem-tunnels-limited')

    await page.getByRole('link', { name: 'Check the cluster nodes' }).click()
    await page.getByRole('heading', { name: 'Cluster nodes' }).waitFor()
    const nodeB = page.getByRole('row', { name: /node-b/ })
    await nodeB.getByText('Down').waitFor()
    assert.equal(await page.getByRole('row', { name: /node-a/ }).getByText('CONNECTED', { exact: true }).count(), 1)
    await screenshot(page, 'onprem-nodes')
    await nodeB.getByRole('button', { name: 'Remove node node-b' }).click()
    await page.getByRole('dialog').getByRole('button', { name: 'Remove node' }).click()
    await nodeB.waitFor({ state: 'detached' })
    assert.deepEqual((await new InstanceAdmin(database).status()).nodes.map((n) => n.id), ['node-a'])
  })

  test('remove key asks first, then every node lets go', async () => {
    await page.getByRole('link', { name: 'Application tunnels' }).click()
    await page.getByRole('row', { name: /Confluence DC/ }).getByText('CONNECTED', { exact: true }).waitFor()
    await page.getByLabel('Actions for Confluence DC').click()
    await page.getByRole('button', { name: 'Remove security key' }).click()
    const dialog = page.getByRole('dialog')
    await dialog.getByText('Every node of this instance disconnects').waitFor()
    await screenshot(page, 'onprem-remove-key-confirm')
    await dialog.getByRole('button', { name: 'Remove security key' }).click()
    await page.getByText('No security key has been added to this instance').waitFor()
    await nodes.get('node-a')!.waitFor((s) => s.status === null)
  })

  test('the instance API refuses requests without a session, and changes without the CSRF token', async () => {
    const url = nodes.get('node-a')!.instanceConsole!.url
    const ca = nodes.get('node-a')!.instanceConsole!.certificatePem
    const anonymous = await consoleRequest(`${url}api/v1/instance/status`, ca)
    assert.equal(anonymous.status, 401)
    assert.match(anonymous.body, /TUN_ERR_CONSOLE_SESSION_REQUIRED/)
    const cookie = (await page.context().cookies()).map((c) => `${c.name}=${c.value}`).join('; ')
    const origin = url.replace(/\/$/, '')
    const put = await consoleRequest(`${url}api/v1/instance/key`, ca, { method: 'PUT', headers: { cookie, origin, 'content-type': 'application/json' }, body: JSON.stringify({ key: (await server.createTunnel('forged')).key }) })
    assert.equal(put.status, 403)
    assert.match(put.body, /TUN_ERR_CONSOLE_CROSS_SITE/)
    assert.equal((await new InstanceAdmin(database).status()).tunnel, null)
  })

  test('apptunnel admin set-password takes the password from stdin and signs the user out everywhere', async () => {
    const { url, certificatePem: ca } = nodes.get('node-a')!.instanceConsole!
    const origin = url.replace(/\/$/, '')
    const cookie = (await page.context().cookies()).map((c) => `${c.name}=${c.value}`).join('; ')
    assert.equal((await consoleRequest(`${url}api/v1/session`, ca, { headers: { cookie } })).status, 200, 'signed in before')
    const run = (args: string[], input: string) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        const child = execFile(process.execPath, [CLI, ...args], { timeout: 30_000 }, (err, stdout, stderr) => resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr }))
        child.stdin!.end(input)
      })
    const short = await run(['admin', 'set-password', '--database', dbFile], 'too short\n')
    assert.notEqual(short.code, 0)
    assert.match(short.stderr, /at least 12 characters long \[TUN_ERR_CONSOLE_PASSWORD_INVALID\]/)
    const changed = await run(['admin', 'set-password', '--database', dbFile], 'a brand new passphrase\n')
    assert.equal(changed.code, 0, changed.stderr)
    assert.match(changed.stdout, /Password of console user admin changed; 1 session signed out/)
    assert.equal((await consoleRequest(`${url}api/v1/session`, ca, { headers: { cookie } })).status, 401, 'the old session is over')
    const signIn = (password: string) =>
      consoleRequest(`${url}api/v1/session`, ca, { method: 'POST', headers: { origin, 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password }) })
    assert.equal((await signIn('a brand new passphrase')).status, 200)
    assert.equal((await signIn((await readFile(join(root, 'node-a', 'console-admin-password'), 'utf8')).trim())).status, 401, 'the first password no longer works')
  })
})

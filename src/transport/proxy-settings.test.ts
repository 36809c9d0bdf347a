import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { loadAgentConfig } from '../config/agent-config.ts'
import { encodeSecurityKey } from '../protocol/index.ts'
import { configError } from '../testing/config-error.ts'
import { bypassesProxy, describeProxy, parseNoProxy, parseProxyUrl, proxyEnvironment, proxyFor, proxySettingsFrom } from './proxy-settings.ts'

const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`

describe('proxy URL', () => {
  test('accepted forms: scheme optional, port required, credentials percent-decoded', () => {
    const cases: Array<[string, { host: string; port: number; label: string; authorization?: string }]> = [
      ['http://proxy.example.com:3128', { host: 'proxy.example.com', port: 3128, label: 'proxy.example.com:3128' }],
      ['  HTTP://Proxy.Example.com:3128/  ', { host: 'proxy.example.com', port: 3128, label: 'proxy.example.com:3128' }],
      ['proxy.example.com:8080', { host: 'proxy.example.com', port: 8080, label: 'proxy.example.com:8080' }],
      ['http://proxy:80', { host: 'proxy', port: 80, label: 'proxy:80' }],
      ['http://10.1.2.3:3128', { host: '10.1.2.3', port: 3128, label: '10.1.2.3:3128' }],
      ['http://[2001:db8::1]:3128', { host: '2001:db8::1', port: 3128, label: '[2001:db8::1]:3128' }],
      ['http://alice:s3cret@proxy:3128', { host: 'proxy', port: 3128, label: 'proxy:3128', authorization: basic('alice', 's3cret') }],
      ['http://dom%5Calice:p%40ss%3Aw%20rd@proxy:3128', { host: 'proxy', port: 3128, label: 'proxy:3128', authorization: basic('dom\\alice', 'p@ss:w rd') }],
      ['alice:pw@proxy:3128', { host: 'proxy', port: 3128, label: 'proxy:3128', authorization: basic('alice', 'pw') }],
      ['http://alice@proxy:3128', { host: 'proxy', port: 3128, label: 'proxy:3128', authorization: basic('alice', '') }],
      ['http://j%C3%BCrgen:%C3%A9t%C3%A9@proxy:3128', { host: 'proxy', port: 3128, label: 'proxy:3128', authorization: basic('jürgen', 'été') }],
    ]
    for (const [input, expected] of cases) assert.deepEqual(parseProxyUrl(input), expected, input)
  })

  test('bad proxy URLs are TUN_ERR_CONFIG_INVALID naming the field and the problem, never the password', () => {
    const cases: Array<[string, RegExp]> = [
      ['', /^proxy: the proxy URL is empty/],
      ['https://proxy:3128', /^proxy: https:\/\/ proxies \(TLS to the proxy\) are not supported/],
      ['socks5://proxy:1080', /^proxy: socks5:\/\/ proxies are not supported, only HTTP CONNECT proxies/],
      ['http://proxy.example.com', /^proxy: the proxy URL must give the port, e\.g\. http:\/\/proxy\.example\.com:3128 \(got "http:\/\/proxy\.example\.com"\)/],
      ['http://alice:hunter2@proxy', /^proxy: the proxy URL must give the port, .*\(got "http:\/\/\*\*\*@proxy"\)/],
      ['http://proxy:0', /^proxy: the proxy port must be 1-65535/],
      ['http://proxy:70000', /^proxy: "http:\/\/proxy:70000" is not a valid proxy URL/],
      ['http://alice:hunter2@proxy:99999', /^proxy: "http:\/\/\*\*\*@proxy:99999" is not a valid proxy URL/],
      ['http://proxy:3128/path', /^proxy: the proxy URL must not have a path, query or fragment/],
      ['http://proxy:3128?x=1', /^proxy: the proxy URL must not have a path, query or fragment/],
      ['http://:3128', /^proxy: "http:\/\/:3128" is not a valid proxy URL/],
      ['http://alice:%ZZ@proxy:3128', /^proxy: the user name or password in the proxy URL has a malformed %-escape/],
      ['http://:hunter2@proxy:3128', /^proxy: the proxy URL has a password but no user name/],
    ]
    for (const [input, expected] of cases) {
      const message = configError(() => parseProxyUrl(input))
      assert.match(message, expected, input)
      assert.match(message, /\(set by --proxy, https_proxy or HTTPS_PROXY\)$/, input)
      assert.doesNotMatch(message, /hunter2/, input)
    }
  })
})

describe('NO_PROXY', () => {
  test('the matcher table: which targets go direct', () => {
    const table: Array<[noProxy: string, host: string, port: number, direct: boolean]> = [
      ['', 'tunnel.example.com', 443, false],
      ['*', 'tunnel.example.com', 443, true],
      ['*', '10.0.0.1', 8443, true],
      // a domain: the name itself and every name under it, with or without the leading dot (curl)
      ['example.com', 'example.com', 443, true],
      ['example.com', 'tunnel.example.com', 443, true],
      ['example.com', 'a.b.example.com', 443, true],
      ['example.com', 'notexample.com', 443, false],
      ['example.com', 'example.com.evil.net', 443, false],
      ['.example.com', 'example.com', 443, true],
      ['.example.com', 'tunnel.example.com', 443, true],
      ['*.example.com', 'tunnel.example.com', 443, true],
      ['*.example.com', 'example.com', 443, true],
      ['Example.COM.', 'TUNNEL.example.com.', 443, true],
      ['tunnel.example.com', 'example.com', 443, false],
      // a port narrows the entry to it
      ['example.com:443', 'tunnel.example.com', 443, true],
      ['example.com:443', 'tunnel.example.com', 8443, false],
      // addresses and blocks match address targets only: names are never resolved
      ['127.0.0.1', '127.0.0.1', 8443, true],
      ['127.0.0.1', '127.0.0.2', 8443, false],
      ['127.0.0.1', 'localhost', 8443, false],
      ['localhost', 'localhost', 8443, true],
      ['localhost', '127.0.0.1', 8443, false],
      ['10.0.0.0/8', '10.200.3.4', 443, true],
      ['10.0.0.0/8', '11.0.0.1', 443, false],
      ['10.0.0.0/8:443', '10.1.1.1', 443, true],
      ['10.0.0.0/8:443', '10.1.1.1', 444, false],
      ['127.0.0.1:8443', '127.0.0.1', 8443, true],
      ['127.0.0.1:8443', '127.0.0.1', 9443, false],
      ['::1', '::1', 443, true],
      ['::1', '[::1]', 443, true],
      ['[::1]', '::1', 443, true],
      ['[::1]:8443', '::1', 8443, true],
      ['[::1]:8443', '::1', 443, false],
      ['2001:db8::/32', '2001:db8:1::5', 443, true],
      ['2001:db8::/32', '2001:db9::5', 443, false],
      ['10.0.0.0/8', '::ffff:10.1.2.3', 443, true],
      // lists: commas and/or whitespace, the first match wins
      ['localhost, 127.0.0.1 ,.corp.example', 'jira.corp.example', 443, true],
      ['localhost 127.0.0.1\t.corp.example', '127.0.0.1', 443, true],
      ['localhost,,127.0.0.1,', 'tunnel.example.com', 443, false],
    ]
    for (const [noProxy, host, port, direct] of table) {
      assert.equal(bypassesProxy(parseNoProxy(noProxy), host, port), direct, `NO_PROXY="${noProxy}" ${host}:${port}`)
    }
  })

  test('an entry that is none of the forms is refused, naming it', () => {
    const cases: Array<[string, RegExp]> = [
      ['192.168.*', /^noProxy: "192\.168\.\*" is not a host name, domain, IP address or CIDR block/],
      ['*example.com', /^noProxy: "\*example\.com" is not a host name/],
      ['<local>', /^noProxy: "<local>" is not a host name/],
      ['.', /^noProxy: "\." is not a host name/],
      ['example.com:0', /^noProxy: "example\.com:0" has a port outside 1-65535/],
      ['example.com:70000', /^noProxy: "example\.com:70000" has a port outside 1-65535/],
      ['10.0.0.0/33', /^noProxy: "10\.0\.0\.0\/33" has a bad prefix length \(0-32\)/],
      ['::1/129', /^noProxy: "::1\/129" has a bad prefix length \(0-128\)/],
      ['host:port:1', /^noProxy: "host:port:1" is not a host, domain, address or CIDR block with an optional :port/],
      ['ok.example, bad_entry!', /^noProxy: "bad_entry!" is not a host name/],
    ]
    for (const [input, expected] of cases) {
      const message = configError(() => parseNoProxy(input))
      assert.match(message, expected, input)
      assert.match(message, /\(set by --no-proxy, no_proxy or NO_PROXY\)$/, input)
    }
  })
})

test('proxyFor: no settings or a NO_PROXY match is direct, anything else the proxy', () => {
  assert.equal(proxyFor(undefined, 'tunnel.example.com', 443), undefined)
  const settings = proxySettingsFrom('http://proxy:3128', 'corp.example')!
  assert.equal(proxyFor(settings, 'jira.corp.example', 443), undefined)
  assert.equal(proxyFor(settings, 'tunnel.example.com', 443)?.label, 'proxy:3128')
  assert.equal(proxySettingsFrom(undefined, 'corp.example'), undefined)
  assert.equal(proxySettingsFrom('  ', 'corp.example'), undefined, "'' turns the proxy off")
  // Without a proxy NO_PROXY has nothing to apply to, so a list meant for other tools does not stop the agent.
  assert.equal(proxySettingsFrom(undefined, '192.168.*'), undefined)
})

test('describeProxy (the one log line) says where the proxy is and never the credentials', () => {
  const settings = proxySettingsFrom('http://alice:hunter2@proxy:3128', '.corp.example, 10.0.0.0/8')!
  const described = describeProxy(settings)
  assert.deepEqual(described, { proxy: 'http://proxy:3128', proxyAuth: 'basic', noProxy: ['corp.example', '10.0.0.0/8'] })
  assert.doesNotMatch(JSON.stringify(described), /alice|hunter2|YWxpY2U/)
})

test('environment: the lower-case variable first, empty is unset, HTTP_PROXY and ALL_PROXY are not read', () => {
  assert.deepEqual(proxyEnvironment({}), {})
  assert.deepEqual(proxyEnvironment({ HTTPS_PROXY: 'http://upper:1', NO_PROXY: 'upper' }), { proxy: 'http://upper:1', noProxy: 'upper' })
  assert.deepEqual(proxyEnvironment({ https_proxy: 'http://lower:1', HTTPS_PROXY: 'http://upper:1', no_proxy: 'lower', NO_PROXY: 'upper' }), { proxy: 'http://lower:1', noProxy: 'lower' })
  assert.deepEqual(proxyEnvironment({ https_proxy: '', HTTPS_PROXY: 'http://upper:1', no_proxy: ' ' }), { proxy: 'http://upper:1' })
  assert.deepEqual(proxyEnvironment({ HTTP_PROXY: 'http://a:1', http_proxy: 'http://a:1', ALL_PROXY: 'socks5://b:1', all_proxy: 'http://c:1' }), {})
})

test('the agent configuration takes proxy and noProxy, checks them at load, and names the field', () => {
  const key = encodeSecurityKey({ serverUrl: 'https://tunnel.example.com', tunnelId: 'abcdefgh12345678', secret: Buffer.alloc(32, 1) })
  const base = { key, upstream: '127.0.0.1:8081' }
  assert.equal(loadAgentConfig(base).proxy, undefined)
  const config = loadAgentConfig({ ...base, proxy: 'http://proxy:3128', noProxy: 'corp.example' })
  assert.equal(config.proxy?.proxy.label, 'proxy:3128')
  assert.equal(proxyFor(config.proxy, 'jira.corp.example', 443), undefined)
  assert.equal(loadAgentConfig({ ...base, proxy: '', noProxy: 'corp.example' }).proxy, undefined)
  assert.match(configError(() => loadAgentConfig({ ...base, proxy: 'https://proxy:3128' })), /^proxy: https:\/\/ proxies/)
  assert.match(configError(() => loadAgentConfig({ ...base, proxy: 'http://proxy:3128', noProxy: '10.0.0.0/40' })), /^noProxy: "10\.0\.0\.0\/40"/)
})

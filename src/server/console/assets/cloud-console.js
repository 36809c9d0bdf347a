// The cloud console (Settings › Application tunnels): the tunnel list, the Create tunnel wizard,
// tunnel details with linked products and activity, delete, API tokens, the audit log and the
// account. Everything goes through the admin JSON API (/api/v1/…) that the CLI uses,
// authenticated by the session cookie and the CSRF token.
//
// Live views update in place: each keeps the elements it drew and changes only the text that
// changed, so a refresh never closes a menu, moves focus or resets what the admin is doing.
import { ApiError, actionsMenu, alertBox, announce, changePasswordForm, clearError, commandBox, confirmDialog, copyButton, createApi, createRouter, createSessionShell, formatDate, freshness, h, localTimes, poll, render, setHeader, setStatus, setText, showError, statusBadge, valueDialog, when } from './console-kit.js'
import { activitySection } from './cloud-activity.js'

const BASE = '/console'
const LIVE_MS = 1000
const api = createApi(BASE + '/api/session')

const router = createRouter(
  [
    [/^\/console\/?$/, () => router.go(BASE + '/tunnels', { replace: true })],
    [/^\/console\/login$/, () => router.go(BASE + '/tunnels', { replace: true })],
    [/^\/console\/tunnels$/, () => tunnelList()],
    [/^\/console\/tunnels\/new$/, () => createWizard()],
    [/^\/console\/tunnels\/([a-z0-9]+)$/, (m) => tunnelDetails(m[1])],
    [/^\/console\/tokens$/, () => tokensPage()],
    [/^\/console\/audit$/, () => auditPage()],
    [/^\/console\/account$/, () => accountPage()],
  ],
  () => {
    header('')
    render('Page not found · cloud console', h('h1', {}, 'Page not found'), h('p', {}, 'The cloud console has no page at this address.'), h('p', {}, h('a', { href: BASE + '/tunnels', 'data-nav': '' }, 'Go to application tunnels')))
  },
)

const shell = createSessionShell({
  api,
  router,
  consoleName: 'cloud console',
  loginPath: BASE + '/login',
  afterSignIn: (next) => (next && next !== BASE + '/login' ? next : BASE + '/tunnels'),
})

function header(current) {
  setHeader(
    shell.session,
    [
      { href: BASE + '/tunnels', label: 'Application tunnels', current: current === 'tunnels' },
      { href: BASE + '/tokens', label: 'API tokens', current: current === 'tokens' },
      { href: BASE + '/audit', label: 'Audit log', current: current === 'audit' },
      { href: BASE + '/account', label: 'Account', current: current === 'account' },
    ],
    () => shell.signOut(),
  )
}

function crumbs(last = 'Application tunnels') {
  return h('p', { class: 'breadcrumbs' }, 'Settings › ' + last)
}

function limitText(count) {
  const max = shell.session.limits.maxTunnels
  return count >= max
    ? `Your organization has ${count} tunnels, the most it can have (${max}). Each on-prem instance needs only one tunnel, and many cloud products can share it: delete a tunnel you no longer use to create another.`
    : `${count} of ${max} tunnels used. Each tunnel goes to one on-prem instance.`
}

/** Who is at the other end: the instances holding live sessions (the console URL is only where to manage it). */
function instanceText(t) {
  return t.connectedInstances && t.connectedInstances.length > 0 ? t.connectedInstances.join(', ') : 'not connected'
}

const SORTS = {
  name: (a, b) => a.name.localeCompare(b.name),
  status: (a, b) => STATUS_ORDER.indexOf(a.status) - STATUS_ORDER.indexOf(b.status) || a.name.localeCompare(b.name),
  created: (a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0),
}
// Problems first: the list is where an admin looks for what needs them.
const STATUS_ORDER = ['UNAVAILABLE', 'INCOMPLETE', 'CONNECTED']

function tunnelList() {
  header('tunnels')
  const create = h('a', { class: 'button primary', href: BASE + '/tunnels/new', 'data-nav': '' }, 'Create tunnel')
  const createDisabled = h('button', { type: 'button', disabled: true, hidden: true, 'aria-describedby': 'tunnel-limit' }, 'Create tunnel')
  const limit = h('p', { class: 'help', id: 'tunnel-limit' })
  const search = h('input', { type: 'search', id: 'tunnel-search', autocomplete: 'off', 'aria-describedby': 'tunnel-count' })
  const sort = h('select', { id: 'tunnel-sort' }, h('option', { value: 'name' }, 'Name'), h('option', { value: 'status' }, 'Status (problems first)'), h('option', { value: 'created' }, 'Newest first'))
  const count = h('p', { class: 'help', id: 'tunnel-count', 'aria-live': 'polite' })
  const toolbar = h('div', { class: 'toolbar', hidden: true }, h('div', {}, h('label', { for: 'tunnel-search' }, 'Search tunnels'), search), h('div', {}, h('label', { for: 'tunnel-sort' }, 'Sort by'), sort), count)
  const body = h('tbody')
  const table = h('table', { 'aria-describedby': 'tunnels-caption' }, h('caption', { id: 'tunnels-caption', class: 'visually-hidden' }, 'Application tunnels of your organization'), h('thead', {}, h('tr', {}, ['Name', 'Instance', 'Status', 'Nodes / sessions', 'Created', 'Actions'].map((c) => h('th', { scope: 'col' }, c)))), body)
  const empty = h('p', { class: 'notice', hidden: true }, 'No tunnels yet. Create a tunnel, then add its security key to your on-prem instance.')
  const noMatch = h('p', { class: 'notice', hidden: true }, 'No tunnel matches the search.')
  const fresh = freshness(document.getElementById('main'))
  render(
    'Application tunnels · cloud console',
    crumbs(),
    h('h1', {}, 'Application tunnels'),
    h('p', { class: 'lead' }, 'Application tunnels connect your cloud products to on-prem instances without opening an incoming port. Create a tunnel, add its security key to the on-prem instance, then use its application link URL.'),
    h('div', { class: 'actions-row' }, create, createDisabled, limit),
    fresh.el,
    empty,
    toolbar,
    noMatch,
    table,
  )
  const rows = new Map()
  let latest = []
  const arrange = () => {
    const q = search.value.trim().toLowerCase()
    const shown = latest.filter((t) => q === '' || [t.name, t.id, instanceText(t), t.instanceUrl ?? '', t.status].some((v) => v.toLowerCase().includes(q))).sort(SORTS[sort.value])
    let previous = null
    const visible = new Set(shown.map((t) => t.id))
    for (const [id, row] of rows) if (!visible.has(id)) row.tr.remove()
    for (const t of shown) {
      const row = rows.get(t.id)
      const wanted = previous === null ? body.firstChild : previous.nextSibling
      if (wanted !== row.tr) body.insertBefore(row.tr, wanted)
      previous = row.tr
    }
    noMatch.hidden = shown.length > 0 || latest.length === 0
    table.hidden = shown.length === 0
    setText(count, latest.length === 0 ? '' : q === '' ? `${latest.length} tunnels` : `${shown.length} of ${latest.length} tunnels match`)
  }
  search.addEventListener('input', arrange)
  sort.addEventListener('change', arrange)
  const refresh = async () => {
    const { tunnels } = await api.get('/api/v1/tunnels')
    const atLimit = tunnels.length >= shell.session.limits.maxTunnels
    setText(limit, limitText(tunnels.length))
    create.hidden = atLimit
    createDisabled.hidden = !atLimit
    empty.hidden = tunnels.length > 0
    toolbar.hidden = tunnels.length === 0
    const ids = new Set(tunnels.map((t) => t.id))
    for (const [id, row] of rows) {
      if (!ids.has(id)) {
        row.tr.remove()
        rows.delete(id)
      }
    }
    for (const t of tunnels) {
      let row = rows.get(t.id)
      if (row === undefined) {
        row = tunnelRow(t)
        rows.set(t.id, row)
      }
      row.update(t)
    }
    latest = tunnels
    arrange()
  }
  return poll(refresh, LIVE_MS, fresh)
}

function tunnelRow(first) {
  const statusBadgeEl = statusBadge(first.status)
  const reason = h('p', { class: 'reason live-value' })
  const instance = h('span', { class: 'live-value' })
  const nodes = h('td', { 'data-label': 'Nodes / sessions', class: 'live-value' })
  let current = first
  let status
  const menu = actionsMenu(`Actions for ${first.name}`, [
    ['View application link URL', () => valueDialog({ title: 'Application link URL', label: `Application link URL of ${current.name}`, value: current.applicationLinkUrl, note: 'Use this URL when you create the application link in each cloud product.' })],
    ['View details', () => void router.go(`${BASE}/tunnels/${current.id}`)],
    ['Delete', () => void deleteTunnel(current)],
  ])
  const tr = h(
    'tr',
    { 'data-tunnel-id': first.id },
    h('td', { 'data-label': 'Name' }, h('a', { href: `${BASE}/tunnels/${first.id}`, 'data-nav': '' }, first.name)),
    h('td', { 'data-label': 'Instance' }, instance, first.instanceUrl ? h('p', { class: 'reason' }, h('a', { href: first.instanceUrl, target: '_blank', rel: 'noopener noreferrer' }, 'Instance console')) : null),
    h('td', { 'data-label': 'Status' }, statusBadgeEl, reason),
    nodes,
    h('td', { 'data-label': 'Created' }, when(first.createdAt)),
    h('td', { 'data-label': 'Actions' }, menu),
  )
  return {
    tr,
    update(t) {
      current = t
      if (status !== undefined && status !== t.status) announce(`Tunnel ${t.name} is now ${t.status}`)
      status = t.status
      setStatus(statusBadgeEl, t.status)
      setText(reason, localTimes(t.statusReason))
      setText(instance, instanceText(t))
      setText(nodes, `${t.nodes} / ${t.sessions}`)
    },
  }
}

async function deleteTunnel(t) {
  const ok = await confirmDialog({
    title: `Delete tunnel “${t.name}”?`,
    body: ['Its security key stops working at once: every session closes and the on-prem instance shows ERROR. Cloud products can no longer reach the instance through its application link URL.', 'This cannot be undone. To connect the instance again, create a new tunnel.'],
    confirmLabel: 'Delete tunnel',
    danger: true,
  })
  if (!ok) return
  try {
    await api.del(`/api/v1/tunnels/${t.id}`)
    announce(`Tunnel ${t.name} deleted`)
    void router.go(BASE + '/tunnels')
  } catch (err) {
    await confirmDialog({ title: 'The tunnel was not deleted', body: [err.message], confirmLabel: 'OK' })
  }
}

/** What the create form says instead of the API's words (which name API fields, not the form's). */
const CREATE_WORDS = {
  TUN_ERR_TUNNEL_URL_INVALID: 'Enter the on-prem console’s address as an https:// URL, e.g. https://onprem.example.com:9443/ — or leave it empty.',
  TUN_ERR_TUNNEL_NAME_TAKEN: 'Your organization already has a tunnel with this name: choose another one.',
}

/** The console URL as typed, or the problem with it (checked here first: the server checks again). */
function consoleUrlProblem(text) {
  if (text === '') return undefined
  let u
  try {
    u = new URL(text)
  } catch {
    return CREATE_WORDS.TUN_ERR_TUNNEL_URL_INVALID
  }
  return u.protocol === 'https:' || u.protocol === 'http:' ? undefined : CREATE_WORDS.TUN_ERR_TUNNEL_URL_INVALID
}

function createWizard() {
  header('tunnels')
  const error = alertBox('create-error')
  const name = h('input', { type: 'text', id: 'tunnel-name', name: 'name', required: true, maxlength: 100, 'aria-describedby': 'tunnel-name-help', 'data-help': 'tunnel-name-help' })
  const url = h('input', { type: 'url', id: 'instance-url', name: 'instanceUrl', placeholder: 'https://onprem.example.com:9443/', 'aria-describedby': 'instance-url-help', 'data-help': 'instance-url-help' })
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Next: create the security key')
  const form = h(
    'form',
    { novalidate: true },
    h('label', { for: 'tunnel-name' }, 'Tunnel name'),
    name,
    h('p', { class: 'help', id: 'tunnel-name-help' }, 'A name that says which on-prem instance this tunnel goes to, e.g. “Jira DC connection”.'),
    h('label', { for: 'instance-url' }, 'On-prem console URL (optional)'),
    url,
    h('p', { class: 'help', id: 'instance-url-help' }, 'The address of the on-prem instance’s apptunnel console. With it, the next step offers a link that opens that console with the key filled in.'),
    error,
    h('div', { class: 'actions-row' }, submit, h('a', { href: BASE + '/tunnels', 'data-nav': '' }, 'Cancel')),
  )
  form.addEventListener('submit', async (e) => {
    e.preventDefault()
    clearError(error, name, url)
    if (name.value.trim() === '') return showError(error, new Error('Enter a name for the tunnel.'), name)
    const urlProblem = consoleUrlProblem(url.value.trim())
    if (urlProblem !== undefined) return showError(error, new Error(urlProblem), url)
    submit.disabled = true
    try {
      const created = await api.post('/api/v1/tunnels', { name: name.value, instanceUrl: url.value.trim() === '' ? undefined : url.value.trim() })
      showKey(created)
    } catch (err) {
      const field = err.code === 'TUN_ERR_TUNNEL_URL_INVALID' ? url : name
      showError(error, err, field, { ...CREATE_WORDS, TUN_ERR_TUNNEL_LIMIT_REACHED: limitText(shell.session.limits.maxTunnels) })
    } finally {
      submit.disabled = false
    }
  })
  render('Create tunnel · cloud console', crumbs(), h('h1', {}, 'Create tunnel'), steps(1), form)
}

function steps(current) {
  return h('ol', { class: 'steps', 'aria-label': 'Steps' }, ['Details', 'Security key'].map((s, i) => h('li', { 'aria-current': i + 1 === current ? 'step' : null }, `${i + 1}. ${s}`)))
}

/** Builds the link that opens the on-prem console with the key in the fragment (never the query). */
function onpremLink(instanceUrl, key) {
  const u = new URL(instanceUrl)
  u.hash = 'key=' + encodeURIComponent(key)
  return u.toString()
}

/** A shell word: quoted when it holds anything a shell would read differently. */
function quote(word) {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`
}

/**
 * The install step: the commands that add the key on the on-prem side, for an instance (nodes
 * sharing a database) and for a single agent, with the app's address the admin types in.
 */
function installCommands(key) {
  const upstream = h('input', { type: 'text', id: 'upstream', value: '127.0.0.1:8080', autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'upstream-help', 'data-help': 'upstream-help' })
  const boxes = h('div')
  const draw = () => {
    const up = upstream.value.trim() === '' ? 'HOST:PORT' : upstream.value.trim()
    boxes.replaceChildren(
      commandBox('cmd-key-add', 'On the instance: store the key for every node', `apptunnel key add ${quote(key)} --database /var/lib/apptunnel/instance.db`),
      commandBox('cmd-agent-node', 'Then on each node: start an agent node', `apptunnel agent --database /var/lib/apptunnel/instance.db --upstream ${quote(up)} --data-dir /var/lib/apptunnel/node`),
      commandBox('cmd-agent', 'Or, a single agent without an instance database', `apptunnel agent --key ${quote(key)} --upstream ${quote(up)}`),
    )
  }
  upstream.addEventListener('input', draw)
  draw()
  return [
    h('h2', {}, 'Or add it from the command line'),
    h('label', { for: 'upstream' }, 'Address of the on-prem app, as the node reaches it'),
    upstream,
    h('p', { class: 'help', id: 'upstream-help' }, 'HOST:PORT of the application’s plain-HTTP port, e.g. 127.0.0.1:8080. The commands below follow it. A command holding the key lands in the shell’s history: apptunnel key add - reads the key from standard input instead.'),
    boxes,
  ]
}

function showKey(t) {
  let copied = false
  const keyBox = h('textarea', { id: 'security-key', readonly: true, rows: 4, 'aria-describedby': 'key-warning' })
  keyBox.value = t.key
  const markCopied = () => {
    if (copied) return
    copied = true
    router.release()
  }
  render(
    'Security key · cloud console',
    crumbs(),
    h('h1', {}, `Tunnel “${t.name}” created`),
    steps(2),
    h('p', { class: 'warning', id: 'key-warning' }, 'Copy the security key now: it is shown only this once. Anyone with it can connect an instance to this tunnel. If it is lost, delete the tunnel and create a new one.'),
    h('label', { for: 'security-key' }, 'Security key'),
    keyBox,
    h('div', { class: 'actions-row' }, copyButton('Copy key', () => t.key, markCopied)),
    h('h2', {}, 'Add the key to your on-prem instance'),
    t.instanceUrl
      ? h(
          'p',
          {},
          // A new tab: this page, the only place the key is shown, stays open behind it.
          h('a', { class: 'button primary', id: 'open-onprem', href: onpremLink(t.instanceUrl, t.key), target: '_blank', rel: 'noopener noreferrer' }, 'Open the on-prem console to add the key'),
          ' ',
          h('span', { class: 'help' }, 'Opens in a new tab. The key travels in the link’s fragment, which your browser never sends to any server.'),
        )
      : h('p', {}, 'Give the key to the on-prem instance’s admin: in its console, Administration › Application tunnels › Add security key.'),
    installCommands(t.key),
    h('h2', {}, 'Application link URL'),
    h('p', { class: 'secret', id: 'application-link-url' }, t.applicationLinkUrl),
    h('div', { class: 'actions-row' }, copyButton('Copy URL', () => t.applicationLinkUrl), h('a', { class: 'button', href: `${BASE}/tunnels/${t.id}`, 'data-nav': '' }, 'Done: view the tunnel')),
  )
  router.hold('Leave without the security key?', ['You have not copied the security key, and it is shown only on this page: once you leave, it is gone. A lost key means deleting the tunnel and creating a new one.'])
}

function tunnelDetails(id) {
  header('tunnels')
  const error = alertBox('details-error')
  const badge = statusBadge(null)
  const reason = h('p', { class: 'reason live-value' })
  const hint = h('p', { class: 'help', id: 'status-hint' })
  const gone = h('p', { class: 'alert', hidden: true }, 'This tunnel has been deleted.')
  const statusArea = h('div', { id: 'tunnel-status' }, badge, reason, hint, gone)
  const facts = h('dl', { class: 'facts' })
  const products = h('div')
  const activity = h('div')
  const fresh = freshness(document.getElementById('main'))
  render('Tunnel · cloud console', crumbs(), h('h1', {}, 'Tunnel'), error, fresh.el, statusArea, facts, activity, products)
  const cells = {}
  const fact = (k, key) => {
    cells[key] = h('dd', { class: 'live-value' })
    return [h('dt', {}, k), cells[key]]
  }
  let current = null
  let drawn = false
  const draw = (t) => {
    if (!drawn) {
      drawn = true
      const heading = document.querySelector('#main h1')
      heading.textContent = t.name
      document.title = `${t.name} · cloud console`
      facts.replaceChildren(
        h('dt', {}, 'Application link URL'),
        h('dd', {}, h('span', { class: 'secret', id: 'application-link-url' }, t.applicationLinkUrl), ' ', copyButton('Copy URL', () => t.applicationLinkUrl)),
        h('dt', {}, 'Tunnel ID'),
        h('dd', {}, t.id),
        ...fact('Instance', 'instance'),
        h('dt', {}, 'Instance console'),
        h('dd', {}, t.instanceUrl ? h('a', { href: t.instanceUrl, target: '_blank', rel: 'noopener noreferrer' }, t.instanceUrl) : '—'),
        ...fact('Nodes / sessions', 'nodes'),
        h('dt', {}, 'Created'),
        h('dd', {}, when(t.createdAt)),
        ...fact('First connected', 'first'),
        ...fact('Last disconnected', 'last'),
      )
    }
    if (current !== null && t.status !== current.status) announce(`Tunnel ${t.name} is now ${t.status}`)
    current = t
    setStatus(badge, t.status)
    setText(reason, localTimes(t.statusReason))
    setText(hint, t.statusHint ?? '')
    setText(cells.instance, instanceText(t))
    setText(cells.nodes, `${t.nodes} / ${t.sessions}`)
    setText(cells.first, t.firstConnectedAt ? formatDate(t.firstConnectedAt) : '—')
    setText(cells.last, t.lastDisconnectedAt ? formatDate(t.lastDisconnectedAt) : '—')
  }
  let cancelled = false
  let loaded = false
  let stopActivity = () => {}
  // One poll from the start: a first load that fails (server away, slow) is retried and shown as
  // stale like any later refresh, instead of leaving a dead page.
  const stopPoll = poll(async () => {
    if (!loaded) {
      let t
      try {
        // The per-tunnel GET once (an audited view, and a 404 for a tunnel that is not there) …
        t = await api.get(`/api/v1/tunnels/${id}`)
      } catch (err) {
        if (!(err instanceof ApiError) || err.code !== 'TUN_ERR_TUNNEL_NOT_FOUND') throw err
        stopPoll()
        fresh.el.remove()
        statusArea.remove()
        showError(error, err, undefined, { TUN_ERR_TUNNEL_NOT_FOUND: 'There is no tunnel with this ID in your organization: it was deleted, or the address is wrong.' })
        return
      }
      if (cancelled) return
      loaded = true
      draw(t)
      stopActivity = activitySection({ api, tunnelId: id, container: activity })
      productsSection(id, products)
      products.append(h('h2', {}, 'Delete tunnel'), h('p', {}, 'Deleting the tunnel revokes its security key at once.'), h('button', { type: 'button', class: 'danger', onclick: () => deleteTunnel(current) }, 'Delete tunnel'))
      return
    }
    // … then the list endpoint answers the live view: a per-tunnel GET is an audited "view" each time.
    const { tunnels } = await api.get('/api/v1/tunnels')
    const t2 = tunnels.find((x) => x.id === id)
    gone.hidden = t2 !== undefined
    if (t2 === undefined) {
      setStatus(badge, 'NONE')
      setText(badge, 'DELETED')
      return
    }
    draw(t2)
  }, LIVE_MS, fresh)
  return () => {
    cancelled = true
    stopPoll()
    stopActivity()
  }
}

function productsSection(tunnelId, container) {
  const list = h('div')
  const error = alertBox('product-error')
  const name = h('input', { type: 'text', id: 'product-name', required: true, maxlength: 100 })
  const cidrs = h('input', { type: 'text', id: 'product-cidrs', 'aria-describedby': 'product-cidrs-help', 'data-help': 'product-cidrs-help', placeholder: '203.0.113.0/24' })
  const credential = h('input', { type: 'checkbox', id: 'product-credential', checked: true })
  const issued = h('div', { 'aria-live': 'polite' })
  const form = h(
    'form',
    { novalidate: true },
    h('h3', {}, 'Add a linked product'),
    h('label', { for: 'product-name' }, 'Product name'),
    name,
    h('label', { for: 'product-cidrs' }, 'Allowed source blocks (optional)'),
    cidrs,
    h('p', { class: 'help', id: 'product-cidrs-help' }, 'CIDR blocks separated by spaces or commas. Callers from other addresses need the credential.'),
    h('p', { class: 'checkbox' }, credential, ' ', h('label', { for: 'product-credential' }, 'Issue a credential (sent in the X-Apptunnel-Credential header)')),
    error,
    h('div', { class: 'actions-row' }, h('button', { type: 'submit' }, 'Add linked product')),
  )
  const load = async () => {
    const { products } = await api.get(`/api/v1/tunnels/${tunnelId}/products`)
    if (products.length === 0) {
      list.replaceChildren(h('p', {}, 'No linked products: every caller that reaches the ingress may use this tunnel. Add the cloud products that use it to let only them in.'))
      return
    }
    list.replaceChildren(
      h(
        'table',
        {},
        h('caption', { class: 'visually-hidden' }, 'Linked products of this tunnel'),
        h('thead', {}, h('tr', {}, ['Name', 'Credential', 'Allowed sources', 'Created', 'Actions'].map((c) => h('th', { scope: 'col' }, c)))),
        h(
          'tbody',
          {},
          products.map((p) =>
            h(
              'tr',
              {},
              h('td', { 'data-label': 'Name' }, p.name),
              h('td', { 'data-label': 'Credential' }, p.credential ? 'Required' : 'None'),
              h('td', { 'data-label': 'Allowed sources' }, p.cidrs.length === 0 ? 'Any (with credential)' : p.cidrs.join(', ')),
              h('td', { 'data-label': 'Created' }, when(p.createdAt)),
              h('td', { 'data-label': 'Actions' }, h('button', { type: 'button', 'aria-label': `Remove linked product ${p.name}`, onclick: () => removeProduct(p) }, 'Remove')),
            ),
          ),
        ),
      ),
    )
  }
  const removeProduct = async (p) => {
    const effect = p.credential
      ? 'Its credential stops working at once' + (p.cidrs.length > 0 ? ', and calls from its allowed source blocks are no longer let in.' : '.')
      : `Calls from its allowed source blocks (${p.cidrs.join(', ')}) are no longer let in.`
    if (!(await confirmDialog({ title: `Remove linked product “${p.name}”?`, body: [effect], confirmLabel: 'Remove', danger: true }))) return
    try {
      await api.del(`/api/v1/tunnels/${tunnelId}/products/${p.id}`)
      announce(`Linked product ${p.name} removed`)
      issued.replaceChildren(h('p', { class: 'notice' }, `${p.name} removed.`))
      router.release()
      await load()
    } catch (err) {
      showError(error, err)
    }
  }
  form.addEventListener('submit', async (e) => {
    e.preventDefault()
    clearError(error, name, cidrs)
    if (name.value.trim() === '') return showError(error, new Error('Enter the product’s name.'), name)
    const blocks = cidrs.value.split(/[\s,]+/).filter(Boolean)
    try {
      const p = await api.post(`/api/v1/tunnels/${tunnelId}/products`, { name: name.value, credential: credential.checked, cidrs: blocks })
      name.value = ''
      cidrs.value = ''
      if (p.credentialValue) {
        issued.replaceChildren(h('div', { class: 'warning' }, h('p', {}, `Credential of ${p.name} — copy it now, it is shown only once:`), h('p', { class: 'secret' }, p.credentialValue), copyButton('Copy credential', () => p.credentialValue, () => router.release())))
        router.hold('Leave without the credential?', [`You have not copied the credential of ${p.name}, and it is shown only here: once you leave, it is gone, and the product must be removed and added again.`])
      } else {
        issued.replaceChildren(h('p', { class: 'notice' }, `${p.name} added.`))
      }
      await load()
    } catch (err) {
      showError(error, err, err.code === 'TUN_ERR_PRODUCT_INVALID' && isCidrProblem(err.message, blocks) ? cidrs : name)
    }
  })
  container.append(h('h2', {}, 'Linked products'), h('p', { class: 'help' }, 'The cloud products allowed to call this tunnel’s application link URL.'), list, issued, form)
  load().catch((err) => showError(error, err))
}

/** Whether the server's refusal is about the source blocks (it names the block, or CIDR blocks). */
function isCidrProblem(message, blocks) {
  return /CIDR|prefix length|IPv4|IPv6/i.test(message) || blocks.some((b) => message.includes(`"${b}"`))
}

function tokensPage() {
  header('tokens')
  const error = alertBox('token-error')
  const body = h('tbody')
  const issued = h('div', { 'aria-live': 'polite' })
  const name = h('input', { type: 'text', id: 'token-name', required: true, maxlength: 100, 'aria-describedby': 'token-name-help', 'data-help': 'token-name-help' })
  const form = h(
    'form',
    { novalidate: true },
    h('h2', {}, 'Create an API token'),
    h('label', { for: 'token-name' }, 'Token name'),
    name,
    h('p', { class: 'help', id: 'token-name-help' }, 'Say what uses it, e.g. “deploy pipeline”. The CLI and scripts send it as Authorization: Bearer …'),
    error,
    h('div', { class: 'actions-row' }, h('button', { type: 'submit', class: 'primary' }, 'Create token')),
  )
  render(
    'API tokens · cloud console',
    crumbs('API tokens'),
    h('h1', {}, 'API tokens'),
    h('p', { class: 'lead' }, 'Tokens let the CLI and scripts use the admin API. A token’s value is shown once, when it is created; the organization keeps at least one.'),
    h('table', {}, h('caption', { class: 'visually-hidden' }, 'API tokens of your organization'), h('thead', {}, h('tr', {}, ['Name', 'Created', 'Last used', 'Actions'].map((c) => h('th', { scope: 'col' }, c)))), body),
    issued,
    form,
  )
  const load = async () => {
    const { tokens } = await api.get('/api/v1/tokens')
    body.replaceChildren(
      ...tokens.map((t) =>
        h(
          'tr',
          {},
          h('td', { 'data-label': 'Name' }, t.name),
          h('td', { 'data-label': 'Created' }, when(t.createdAt)),
          h('td', { 'data-label': 'Last used' }, t.lastUsedAt ? when(t.lastUsedAt) : 'never'),
          h('td', { 'data-label': 'Actions' }, h('button', { type: 'button', 'aria-label': `Revoke token ${t.name}`, onclick: () => revoke(t) }, 'Revoke')),
        ),
      ),
    )
  }
  const revoke = async (t) => {
    if (!(await confirmDialog({ title: `Revoke token “${t.name}”?`, body: ['Whatever uses it can no longer call the admin API, at once.'], confirmLabel: 'Revoke token', danger: true }))) return
    clearError(error)
    try {
      await api.del(`/api/v1/tokens/${t.id}`)
      announce(`Token ${t.name} revoked`)
      issued.replaceChildren()
      await load()
    } catch (err) {
      showError(error, err, undefined, { TUN_ERR_TOKEN_LAST: `“${t.name}” is the organization’s last API token: create another one before revoking it.` })
    }
  }
  form.addEventListener('submit', async (e) => {
    e.preventDefault()
    clearError(error, name)
    if (name.value.trim() === '') return showError(error, new Error('Enter a name for the token.'), name)
    try {
      const created = await api.post('/api/v1/tokens', { name: name.value })
      name.value = ''
      issued.replaceChildren(h('div', { class: 'warning' }, h('p', {}, `Token ${created.name} — copy it now, it is shown only once:`), h('p', { class: 'secret', id: 'token-value' }, created.token), copyButton('Copy token', () => created.token, () => router.release())))
      router.hold('Leave without the token?', ['You have not copied the new API token, and it is shown only here: once you leave, it is gone.'])
      await load()
    } catch (err) {
      showError(error, err, name)
    }
  })
  load().catch((err) => showError(error, err))
}

function auditPage() {
  header('audit')
  const error = alertBox('audit-error')
  const body = h('tbody')
  const filter = h('input', { type: 'search', id: 'audit-filter', autocomplete: 'off' })
  let events = []
  const draw = () => {
    const q = filter.value.trim().toLowerCase()
    const shown = events.filter((e) => q === '' || [e.actor, e.action, e.target ?? '', e.sourceAddress ?? ''].some((v) => v.toLowerCase().includes(q)))
    body.replaceChildren(
      ...(shown.length === 0
        ? [h('tr', {}, h('td', { colspan: 5 }, events.length === 0 ? 'No events yet.' : 'No event matches.'))]
        : shown.map((e) => h('tr', {}, h('td', { 'data-label': 'When' }, when(e.at)), h('td', { 'data-label': 'Who' }, e.actor), h('td', { 'data-label': 'What' }, e.action), h('td', { 'data-label': 'Target' }, e.target ?? '—'), h('td', { 'data-label': 'From' }, e.sourceAddress ?? '—')))),
    )
  }
  filter.addEventListener('input', draw)
  render(
    'Audit log · cloud console',
    crumbs('Audit log'),
    h('h1', {}, 'Audit log'),
    h('p', { class: 'lead' }, 'Sign-ins, tunnel and token changes of your organization, newest first (the last 200).'),
    h('div', { class: 'toolbar' }, h('div', {}, h('label', { for: 'audit-filter' }, 'Filter events'), filter)),
    error,
    h('table', {}, h('caption', { class: 'visually-hidden' }, 'Audit events of your organization'), h('thead', {}, h('tr', {}, ['When', 'Who', 'What', 'Target', 'From'].map((c) => h('th', { scope: 'col' }, c)))), body),
  )
  api.get('/api/v1/audit?limit=200').then(
    (r) => {
      events = r.events
      draw()
    },
    (err) => showError(error, err),
  )
}

function accountPage() {
  header('account')
  render('Account · cloud console', crumbs('Account'), h('h1', {}, 'Account'), h('p', {}, 'Signed in as ', h('strong', {}, shell.session.user.username), ` (${shell.session.org.name}).`), h('h2', {}, 'Change password'), changePasswordForm({ api }))
}

void shell.start(() => router.show())

// The cloud console (Settings › Application tunnels): the tunnel list, the Create tunnel wizard,
// tunnel details with linked products, and delete. Everything goes through the admin JSON API
// (/api/v1/…) that the CLI uses, authenticated by the session cookie and the CSRF token.
import { ApiError, alertBox, announce, clearError, confirmDialog, copyButton, createApi, createRouter, createSessionShell, h, poll, render, setHeader, showError, statusBadge, valueDialog, when } from './console-kit.js'

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
  ],
  () => render('Not found', h('h1', {}, 'Page not found'), h('p', {}, h('a', { href: BASE + '/tunnels', 'data-nav': '' }, 'Go to application tunnels'))),
)

const shell = createSessionShell({
  api,
  router,
  consoleName: 'cloud console',
  loginPath: BASE + '/login',
  afterSignIn: (next) => (next && next !== BASE + '/login' ? next : BASE + '/tunnels'),
})

function header(current) {
  setHeader(shell.session, [{ href: BASE + '/tunnels', label: 'Application tunnels', current: current === 'tunnels' }], () => shell.signOut())
}

function crumbs() {
  return h('p', { class: 'breadcrumbs' }, 'Settings › Application tunnels')
}

function limitText(count) {
  const max = shell.session.limits.maxTunnels
  return count >= max
    ? `Your organization has ${count} tunnels, the most it can have (${max}). Each on-prem instance needs only one tunnel, and many cloud products can share it: delete a tunnel you no longer use to create another.`
    : `${count} of ${max} tunnels used. Each tunnel goes to one on-prem instance.`
}

function tunnelList() {
  header('tunnels')
  const create = h('a', { class: 'button primary', href: BASE + '/tunnels/new', 'data-nav': '' }, 'Create tunnel')
  const createDisabled = h('button', { type: 'button', disabled: true, hidden: true, 'aria-describedby': 'tunnel-limit' }, 'Create tunnel')
  const limit = h('p', { class: 'help', id: 'tunnel-limit' })
  const body = h('tbody')
  const table = h('table', { 'aria-describedby': 'tunnels-caption' }, h('caption', { id: 'tunnels-caption', class: 'visually-hidden' }, 'Application tunnels of your organization'), h('thead', {}, h('tr', {}, ['Name', 'Instance', 'Status', 'Nodes / sessions', 'Created', 'Actions'].map((c) => h('th', { scope: 'col' }, c)))), body)
  const empty = h('p', { class: 'notice', hidden: true }, 'No tunnels yet. Create a tunnel, then add its security key to your on-prem instance.')
  const error = alertBox('list-error')
  render(
    'Application tunnels · cloud console',
    crumbs(),
    h('h1', {}, 'Application tunnels'),
    h('p', { class: 'lead' }, 'Application tunnels connect your cloud products to on-prem instances without opening an incoming port. Create a tunnel, add its security key to the on-prem instance, then use its application link URL.'),
    h('div', { class: 'actions-row' }, create, createDisabled, limit),
    error,
    empty,
    table,
  )
  const rows = new Map()
  let shownIds = ''
  const refresh = async () => {
    const { tunnels } = await api.get('/api/v1/tunnels')
    clearError(error)
    const atLimit = tunnels.length >= shell.session.limits.maxTunnels
    limit.textContent = limitText(tunnels.length)
    create.hidden = atLimit
    createDisabled.hidden = !atLimit
    empty.hidden = tunnels.length > 0
    table.hidden = tunnels.length === 0
    const ids = tunnels.map((t) => t.id).join(',')
    if (ids !== shownIds) {
      shownIds = ids
      rows.clear()
      body.replaceChildren(...tunnels.map((t) => tunnelRow(t, rows)))
    }
    for (const t of tunnels) {
      const r = rows.get(t.id)
      if (r.status !== t.status) {
        if (r.status !== undefined) announce(`Tunnel ${t.name} is now ${t.status}`)
        r.status = t.status
        r.statusCell.replaceChildren(statusBadge(t.status), h('p', { class: 'reason' }, t.statusReason))
      } else r.statusCell.querySelector('.reason').textContent = t.statusReason
      r.nodesCell.textContent = `${t.nodes} / ${t.sessions}`
    }
  }
  return poll(() => refresh().catch((err) => {
    if (err instanceof ApiError && err.status === 401) throw err
    showError(error, err)
  }), LIVE_MS)
}

function tunnelRow(t, rows) {
  const statusCell = h('td', { 'data-label': 'Status' })
  const nodesCell = h('td', { 'data-label': 'Nodes / sessions' })
  const menu = h(
    'details',
    { class: 'menu' },
    h('summary', { 'aria-label': `Actions for ${t.name}` }, '⋯'),
    h(
      'ul',
      {},
      h('li', {}, h('button', { type: 'button', onclick: () => { menu.open = false; valueDialog({ title: 'Application link URL', label: `Application link URL of ${t.name}`, value: t.applicationLinkUrl, note: 'Use this URL when you create the application link in each cloud product.' }) } }, 'View application link URL')),
      h('li', {}, h('button', { type: 'button', onclick: () => router.go(`${BASE}/tunnels/${t.id}`) }, 'View details')),
      h('li', {}, h('button', { type: 'button', onclick: () => { menu.open = false; void deleteTunnel(t) } }, 'Delete')),
    ),
  )
  rows.set(t.id, { statusCell, nodesCell, status: undefined })
  return h(
    'tr',
    { 'data-tunnel-id': t.id },
    h('td', { 'data-label': 'Name' }, h('a', { href: `${BASE}/tunnels/${t.id}`, 'data-nav': '' }, t.name)),
    h('td', { 'data-label': 'Instance' }, t.instanceUrl ?? '—'),
    statusCell,
    nodesCell,
    h('td', { 'data-label': 'Created' }, when(t.createdAt)),
    h('td', { 'data-label': 'Actions' }, menu),
  )
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
    router.go(BASE + '/tunnels')
  } catch (err) {
    await confirmDialog({ title: 'The tunnel was not deleted', body: [err.message], confirmLabel: 'OK' })
  }
}

function createWizard() {
  header('tunnels')
  const error = alertBox('create-error')
  const name = h('input', { type: 'text', id: 'tunnel-name', name: 'name', required: true, maxlength: 100, 'aria-describedby': 'tunnel-name-help' })
  const url = h('input', { type: 'url', id: 'instance-url', name: 'instanceUrl', placeholder: 'https://onprem.example.com:9443/', 'aria-describedby': 'instance-url-help' })
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
    clearError(error, name)
    clearError(error, url)
    if (name.value.trim() === '') return showError(error, new Error('Enter a name for the tunnel.'), name)
    submit.disabled = true
    try {
      const created = await api.post('/api/v1/tunnels', { name: name.value, instanceUrl: url.value.trim() === '' ? undefined : url.value.trim() })
      showKey(created)
    } catch (err) {
      const field = err.code === 'TUN_ERR_TUNNEL_URL_INVALID' ? url : name
      if (err.code === 'TUN_ERR_TUNNEL_LIMIT_REACHED') err.message = limitText(shell.session.limits.maxTunnels)
      showError(error, err, field)
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

function showKey(t) {
  const keyBox = h('textarea', { id: 'security-key', readonly: true, rows: 4, 'aria-describedby': 'key-warning' })
  keyBox.value = t.key
  render(
    'Security key · cloud console',
    crumbs(),
    h('h1', {}, `Tunnel “${t.name}” created`),
    steps(2),
    h('p', { class: 'warning', id: 'key-warning' }, 'Copy the security key now: it is shown only this once. Anyone with it can connect an instance to this tunnel. If it is lost, delete the tunnel and create a new one.'),
    h('label', { for: 'security-key' }, 'Security key'),
    keyBox,
    h('div', { class: 'actions-row' }, copyButton('Copy key', () => t.key)),
    h('h2', {}, 'Add the key to your on-prem instance'),
    t.instanceUrl
      ? h('p', {}, h('a', { class: 'button primary', id: 'open-onprem', href: onpremLink(t.instanceUrl, t.key) }, 'Open the on-prem console to add the key'), ' ', h('span', { class: 'help' }, 'The key travels in the link’s fragment, which your browser never sends to any server.'))
      : h('p', {}, 'Give the key to the on-prem instance’s admin: in its console, Administration › Application tunnels › Add security key (or apptunnel key add).'),
    h('h2', {}, 'Application link URL'),
    h('p', { class: 'secret', id: 'application-link-url' }, t.applicationLinkUrl),
    h('div', { class: 'actions-row' }, copyButton('Copy URL', () => t.applicationLinkUrl), h('a', { class: 'button', href: `${BASE}/tunnels/${t.id}`, 'data-nav': '' }, 'Done: view the tunnel')),
  )
}

function tunnelDetails(id) {
  header('tunnels')
  const error = alertBox('details-error')
  const statusArea = h('div', { role: 'status', 'aria-live': 'polite', id: 'tunnel-status' })
  const facts = h('dl', { class: 'facts' })
  const products = h('div')
  let current = null
  render('Tunnel · cloud console', crumbs(), h('h1', {}, 'Tunnel'), error, statusArea, facts, products)
  const draw = (t) => {
    const heading = document.querySelector('#main h1')
    heading.textContent = t.name
    document.title = `${t.name} · cloud console`
    if (current === null || current.status !== t.status || current.statusReason !== t.statusReason) statusArea.replaceChildren(statusBadge(t.status), h('p', { class: 'reason' }, t.statusReason))
    current = t
    const row = (k, v) => [h('dt', {}, k), h('dd', {}, v)]
    facts.replaceChildren(
      ...row('Application link URL', h('span', {}, h('span', { class: 'secret', id: 'application-link-url' }, t.applicationLinkUrl), ' ', copyButton('Copy URL', () => t.applicationLinkUrl))),
      ...row('Tunnel ID', t.id),
      ...row('Instance', t.instanceUrl ?? '—'),
      ...row('Nodes / sessions', `${t.nodes} / ${t.sessions}`),
      ...row('Created', when(t.createdAt)),
      ...row('First connected', when(t.firstConnectedAt)),
      ...row('Last disconnected', when(t.lastDisconnectedAt)),
    )
  }
  let stop = () => {}
  let cancelled = false
  api.get(`/api/v1/tunnels/${id}`).then(
    (t) => {
      if (cancelled) return
      draw(t)
      productsSection(id, products)
      products.append(h('h2', {}, 'Delete tunnel'), h('p', {}, 'Deleting the tunnel revokes its security key at once.'), h('button', { type: 'button', class: 'danger', onclick: () => deleteTunnel(current) }, 'Delete tunnel'))
      // The list endpoint answers the live view: a per-tunnel GET is an audited "view" each time.
      stop = poll(async () => {
        const { tunnels } = await api.get('/api/v1/tunnels')
        const t2 = tunnels.find((x) => x.id === id)
        if (t2 === undefined) {
          statusArea.replaceChildren(h('p', { class: 'alert' }, 'This tunnel has been deleted.'))
          return
        }
        if (current && t2.status !== current.status) announce(`Tunnel ${t2.name} is now ${t2.status}`)
        draw(t2)
      }, LIVE_MS)
    },
    (err) => showError(error, err),
  )
  return () => {
    cancelled = true
    stop()
  }
}

function productsSection(tunnelId, container) {
  const list = h('div')
  const error = alertBox('product-error')
  const name = h('input', { type: 'text', id: 'product-name', required: true, maxlength: 100 })
  const cidrs = h('input', { type: 'text', id: 'product-cidrs', 'aria-describedby': 'product-cidrs-help', placeholder: '203.0.113.0/24' })
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
    if (!(await confirmDialog({ title: `Remove linked product “${p.name}”?`, body: ['Its credential stops working at once.'], confirmLabel: 'Remove', danger: true }))) return
    try {
      await api.del(`/api/v1/tunnels/${tunnelId}/products/${p.id}`)
      announce(`Linked product ${p.name} removed`)
      await load()
    } catch (err) {
      showError(error, err)
    }
  }
  form.addEventListener('submit', async (e) => {
    e.preventDefault()
    clearError(error, name)
    if (name.value.trim() === '') return showError(error, new Error('Enter the product’s name.'), name)
    try {
      const blocks = cidrs.value.split(/[\s,]+/).filter(Boolean)
      const p = await api.post(`/api/v1/tunnels/${tunnelId}/products`, { name: name.value, credential: credential.checked, cidrs: blocks })
      name.value = ''
      cidrs.value = ''
      issued.replaceChildren(
        p.credentialValue
          ? h('div', { class: 'warning' }, h('p', {}, `Credential of ${p.name} — copy it now, it is shown only once:`), h('p', { class: 'secret' }, p.credentialValue), copyButton('Copy credential', () => p.credentialValue))
          : h('p', { class: 'notice' }, `${p.name} added.`),
      )
      await load()
    } catch (err) {
      showError(error, err, err.code === 'TUN_ERR_PRODUCT_INVALID' && /CIDR|cidr/.test(err.message) ? cidrs : name)
    }
  })
  container.append(h('h2', {}, 'Linked products'), h('p', { class: 'help' }, 'The cloud products allowed to call this tunnel’s application link URL.'), list, issued, form)
  load().catch((err) => showError(error, err))
}

void shell.start(() => router.show())

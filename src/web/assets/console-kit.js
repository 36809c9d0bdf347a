// Shared browser code of the apptunnel consoles: the JSON API client (session cookie + CSRF
// token), a DOM builder that only ever sets text (never HTML, so no value can inject markup),
// status badges, copy buttons, live polling, confirmation dialogs and the sign-in form.

/** An error answered by the API: `code` is the stable TUN_ERR_… code. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message)
    this.status = status
    this.code = code
  }
}

const REQUEST_TIMEOUT_MS = 8000

/** A client of one console's JSON API. `sessionPath` is its session resource. */
export function createApi(sessionPath) {
  let csrfToken = null
  async function call(method, path, body) {
    const headers = { accept: 'application/json' }
    if (body !== undefined) headers['content-type'] = 'application/json'
    if (method !== 'GET' && csrfToken !== null) headers['x-csrf-token'] = csrfToken
    let res
    try {
      // A server that accepts the connection but never answers must not hold a live view forever.
      // Only reads give up: a change the page stopped waiting for may still be made.
      const signal = method === 'GET' ? AbortSignal.timeout(REQUEST_TIMEOUT_MS) : undefined
      res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin', cache: 'no-store', signal })
    } catch {
      throw new ApiError(0, 'NETWORK', 'The console cannot reach its server. Check that it is running, then try again.')
    }
    let text
    try {
      text = await res.text()
    } catch {
      throw new ApiError(0, 'NETWORK', 'The console lost its connection to the server. Check that it is running, then try again.')
    }
    let json = null
    try {
      json = text === '' ? null : JSON.parse(text)
    } catch {
      json = null
    }
    if (!res.ok) {
      const e = json && json.error ? json.error : { code: 'HTTP_' + res.status, message: 'The server answered HTTP ' + res.status + '.' }
      throw new ApiError(res.status, e.code, e.message)
    }
    return json
  }
  return {
    call,
    get: (path) => call('GET', path),
    post: (path, body) => call('POST', path, body ?? {}),
    put: (path, body) => call('PUT', path, body ?? {}),
    del: (path) => call('DELETE', path),
    /** The signed-in session (user, CSRF token, console facts), or null when signed out. */
    async session() {
      try {
        const s = await call('GET', sessionPath)
        csrfToken = s.csrfToken
        return s
      } catch (err) {
        if (err instanceof ApiError && err.status === 401) return null
        throw err
      }
    },
    async signIn(username, password) {
      const s = await call('POST', sessionPath, { username, password })
      csrfToken = s.csrfToken
      return s
    },
    async signOut() {
      await call('DELETE', sessionPath)
      csrfToken = null
    },
    /** Changes the signed-in user's password; the server starts a new session (a new CSRF token). */
    async changePassword(currentPassword, newPassword) {
      const s = await call('POST', sessionPath + '/password', { currentPassword, newPassword })
      csrfToken = s.csrfToken
      return s
    },
  }
}

/**
 * h('p', { class: 'x', onclick: f }, 'text', child): an element. Strings become text nodes; attributes
 * named on… become listeners; false/null/undefined attributes and children are left out.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === false || v === null || v === undefined) continue
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v)
    else if (k === 'text') el.textContent = String(v)
    else el.setAttribute(k, v === true ? '' : String(v))
  }
  for (const c of children.flat()) {
    if (c === false || c === null || c === undefined) continue
    el.append(c instanceof Node ? c : document.createTextNode(String(c)))
  }
  return el
}

/** A status as text and colour (never colour alone); null shows as NO KEY. */
export function statusBadge(status) {
  const badge = h('span', { class: 'status' })
  setStatus(badge, status)
  return badge
}

/** Changes a badge in place (the element, and whatever holds focus near it, stays). */
export function setStatus(badge, status) {
  const name = 'status status-' + (status ?? 'NONE')
  if (badge.className !== name) badge.className = name
  setText(badge, status ?? 'NO KEY')
}

/** Sets an element's text only when it changed: a live view rewrites nothing that did not. */
export function setText(el, text) {
  const value = String(text)
  if (el.textContent !== value) el.textContent = value
}

// One format for every date a console shows: the reader's local time, the same everywhere.
const DATE_FORMAT = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' })
const ISO_IN_TEXT = /\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z\b/g

/** A date as the console shows dates (local time). */
export function formatDate(iso) {
  const d = new Date(iso)
  return Number.isNaN(d.getTime()) ? String(iso) : DATE_FORMAT.format(d)
}

/** A local date and time a person reads easily; the ISO value stays in a <time> element. */
export function when(iso) {
  if (!iso) return '—'
  return h('time', { datetime: iso }, formatDate(iso))
}

/** Server reasons carry ISO timestamps (they are also logged); the page shows them in local time. */
export function localTimes(text) {
  return String(text ?? '').replace(ISO_IN_TEXT, (iso) => formatDate(iso))
}

let liveRegion = null
/** Says `message` to screen readers through the page's polite live region. */
export function announce(message) {
  if (liveRegion === null) liveRegion = document.getElementById('announcer')
  if (liveRegion === null) return
  liveRegion.textContent = ''
  setTimeout(() => { liveRegion.textContent = message }, 50)
}

/** A button that copies `text()` to the clipboard and says so; `onCopied` runs after. */
export function copyButton(label, text, onCopied) {
  const button = h('button', { type: 'button', 'data-copy': '' }, label)
  button.addEventListener('click', async () => {
    const value = text()
    try {
      await navigator.clipboard.writeText(value)
    } catch {
      // Some browsers refuse the clipboard API without a permission: copy through a selection.
      const area = h('textarea', { class: 'visually-hidden', 'aria-hidden': 'true' })
      area.value = value
      document.body.append(area)
      area.select()
      document.execCommand('copy')
      area.remove()
    }
    button.textContent = 'Copied'
    announce('Copied to the clipboard')
    if (onCopied) onCopied()
    setTimeout(() => { button.textContent = label }, 2000)
  })
  return button
}

/** A command line to run, with its copy button. */
export function commandBox(id, label, command, note) {
  return h(
    'div',
    { class: 'command' },
    h('p', { class: 'command-label', id: id + '-label' }, label),
    h('pre', { id, 'aria-labelledby': id + '-label', tabindex: '0' }, h('code', {}, command)),
    h('div', { class: 'actions-row' }, copyButton('Copy command', () => command), note ? h('span', { class: 'help' }, note) : null),
  )
}

/** How old data may get before a view says it cannot vouch for it (5 missed one-second polls). */
export const STALE_AFTER_MS = 5000

/**
 * What a live view says about its own data: when it was last updated and, once the server cannot be
 * reached (or has not answered for STALE_AFTER_MS), that what it shows is out of date. While stale,
 * `scope` carries data-stale, which greys out every status badge in it.
 */
export function freshness(scope) {
  const el = h('p', { class: 'freshness', id: 'freshness' })
  let lastOk = null
  let failure = null
  let stale = false
  const draw = () => {
    const now = Date.now()
    const isStale = failure !== null || (lastOk !== null && now - lastOk > STALE_AFTER_MS)
    if (isStale !== stale) {
      stale = isStale
      if (stale) scope.setAttribute('data-stale', '')
      else scope.removeAttribute('data-stale')
      announce(stale ? 'The console cannot reach the server: the statuses shown are out of date.' : 'The console is up to date again.')
    }
    el.classList.toggle('stale', stale)
    if (!stale) {
      setText(el, lastOk === null ? 'Loading…' : 'Live: updated ' + formatDate(new Date(lastOk).toISOString()))
      return
    }
    const why = failure === null || failure.status === 0 ? 'cannot reach the server' : 'the server answered with an error: ' + failure.message
    const age = lastOk === null ? 'Not loaded yet' : 'Last updated ' + ago(now - lastOk)
    setText(el, `${age} — ${why}. The statuses shown are the last known ones; the page retries every second.`)
  }
  const timer = setInterval(draw, 1000)
  draw()
  return {
    el,
    ok() {
      lastOk = Date.now()
      failure = null
      draw()
    },
    failed(err) {
      failure = err
      draw()
    },
    get stale() {
      return stale
    },
    stop() {
      clearInterval(timer)
    },
  }
}

function ago(ms) {
  const s = Math.max(0, Math.round(ms / 1000))
  if (s < 90) return `${s} s ago`
  const m = Math.round(s / 60)
  return m < 90 ? `${m} min ago` : `${Math.round(m / 60)} h ago`
}

/**
 * Calls `tick` now and every `intervalMs` until the returned stop() is called; skips while the tab
 * is hidden, and never runs two ticks at once. With `fresh` (a freshness()), each tick's outcome
 * is reported to it.
 */
export function poll(tick, intervalMs, fresh) {
  let stopped = false
  let running = false
  const run = async () => {
    if (stopped || running || document.hidden) return
    running = true
    try {
      await tick()
      if (fresh && !stopped) fresh.ok()
    } catch (err) {
      // A stopped poll's view is gone: what its last answer says is no longer this page's business.
      if (stopped) return
      if (err instanceof ApiError && err.status === 401) window.dispatchEvent(new Event('console:signed-out'))
      else if (fresh) fresh.failed(err)
    } finally {
      running = false
    }
  }
  void run()
  const timer = setInterval(run, intervalMs)
  return () => {
    stopped = true
    clearInterval(timer)
    if (fresh) fresh.stop()
  }
}

/**
 * The ⋯ actions menu: a disclosure (<details>) that Escape and a click outside close, giving focus
 * back to its button. `items` is [[label, action]].
 */
export function actionsMenu(label, items) {
  const summary = h('summary', { 'aria-label': label }, '⋯')
  const menu = h('details', { class: 'menu' }, summary, h('ul', {}, items.map(([text, action]) => h('li', {}, h('button', { type: 'button', onclick: () => { closeMenu(menu, false); action() } }, text)))))
  menu.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && menu.open) {
      e.preventDefault()
      closeMenu(menu, true)
    }
  })
  return menu
}

function closeMenu(menu, focusButton) {
  menu.open = false
  if (focusButton) menu.querySelector('summary').focus()
}

document.addEventListener('click', (e) => {
  for (const menu of document.querySelectorAll('details.menu[open]')) {
    if (!(e.target instanceof Node) || !menu.contains(e.target)) closeMenu(menu, false)
  }
})

/**
 * Where focus goes back to when a dialog closes: the control that opened it or, when that was an
 * item of a menu that has closed since, the menu's button.
 */
function opener() {
  const active = document.activeElement
  if (!(active instanceof HTMLElement) || active === document.body) return null
  const menu = active.closest('details.menu')
  return menu ? menu.querySelector('summary') : active
}

function restoreFocus(target) {
  if (target && target.isConnected) target.focus()
}

/** A modal question; resolves true when the person confirms. */
export function confirmDialog({ title, body, confirmLabel, danger, cancelLabel = 'Cancel' }) {
  const back = opener()
  return new Promise((resolve) => {
    const titleId = 'dialog-title-' + Math.random().toString(36).slice(2)
    const cancel = h('button', { type: 'button', value: 'cancel' }, cancelLabel)
    const ok = h('button', { type: 'button', class: danger ? 'danger' : 'primary', value: 'ok' }, confirmLabel)
    const dialog = h('dialog', { 'aria-labelledby': titleId }, h('h2', { id: titleId }, title), ...[].concat(body).map((p) => h('p', {}, p)), h('div', { class: 'actions-row' }, cancel, ok))
    const finish = (answer) => {
      dialog.close()
      dialog.remove()
      restoreFocus(back)
      resolve(answer)
    }
    cancel.addEventListener('click', () => finish(false))
    ok.addEventListener('click', () => finish(true))
    dialog.addEventListener('cancel', (e) => {
      e.preventDefault()
      finish(false)
    })
    document.body.append(dialog)
    dialog.showModal()
    cancel.focus()
  })
}

/** A dialog that shows a value with a copy button (e.g. the application link URL). */
export function valueDialog({ title, label, value, note }) {
  const back = opener()
  const titleId = 'dialog-title-' + Math.random().toString(36).slice(2)
  const inputId = 'dialog-value-' + Math.random().toString(36).slice(2)
  const input = h('input', { type: 'text', id: inputId, readonly: true, value })
  const close = h('button', { type: 'button' }, 'Close')
  const dialog = h('dialog', { 'aria-labelledby': titleId }, h('h2', { id: titleId }, title), h('label', { for: inputId }, label), input, note ? h('p', { class: 'help' }, note) : null, h('div', { class: 'actions-row' }, copyButton('Copy', () => value), close))
  close.addEventListener('click', () => dialog.close())
  dialog.addEventListener('close', () => {
    dialog.remove()
    restoreFocus(back)
  })
  document.body.append(dialog)
  dialog.showModal()
  input.select()
}

/** An error region tied to a form: role=alert so it is read out when it fills. */
export function alertBox(id) {
  return h('div', { class: 'alert', role: 'alert', id })
}

/**
 * Shows `err` in `box`, marks `field` invalid and points it at the message. `words` maps error
 * codes to what the page says instead of the server's message (which names API fields, not the
 * form's); an unmapped API error keeps its message and code, for a bug report.
 */
export function showError(box, err, field, words = {}) {
  const own = err instanceof ApiError && Object.hasOwn(words, err.code)
  box.textContent = own ? words[err.code] : err instanceof ApiError ? err.message + (err.code && err.code.startsWith('TUN_ERR_') ? ' (' + err.code + ')' : '') : String(err && err.message ? err.message : err)
  if (field) {
    field.setAttribute('aria-invalid', 'true')
    field.setAttribute('aria-describedby', [field.dataset.help, box.id].filter(Boolean).join(' '))
    field.focus()
  }
}

/** Empties `box` and takes the invalid mark off every field given. */
export function clearError(box, ...fields) {
  box.textContent = ''
  for (const field of fields) {
    if (!field) continue
    field.removeAttribute('aria-invalid')
    if (field.dataset.help) field.setAttribute('aria-describedby', field.dataset.help)
    else field.removeAttribute('aria-describedby')
  }
}

/** Replaces the page's main content, names the page, and moves focus to its heading. */
export function render(title, ...content) {
  const main = document.getElementById('main')
  main.removeAttribute('data-stale')
  main.replaceChildren(...content.flat().filter(Boolean))
  document.title = title
  const heading = main.querySelector('h1')
  if (heading) {
    heading.setAttribute('tabindex', '-1')
    heading.focus()
  }
}

/** The sign-in form; `onSignedIn(session)` runs after a successful sign-in. */
export function renderSignIn({ api, consoleName, onSignedIn, notice }) {
  const error = alertBox('signin-error')
  const user = h('input', { type: 'text', id: 'username', name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false' })
  const pass = h('input', { type: 'password', id: 'password', name: 'password', autocomplete: 'current-password', required: true })
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Sign in')
  const form = h('form', { novalidate: true }, h('label', { for: 'username' }, 'User name'), user, h('label', { for: 'password' }, 'Password'), pass, error, h('div', { class: 'actions-row' }, submit))
  form.addEventListener('submit', async (e) => {
    e.preventDefault()
    clearError(error, user, pass)
    if (user.value.trim() === '' || pass.value === '') {
      showError(error, new Error('Enter your user name and password.'), user.value.trim() === '' ? user : pass)
      return
    }
    submit.disabled = true
    try {
      const session = await api.signIn(user.value.trim(), pass.value)
      onSignedIn(session)
    } catch (err) {
      pass.value = ''
      showError(error, err, pass)
    } finally {
      submit.disabled = false
    }
  })
  setHeader(null)
  render('Sign in · ' + consoleName, h('div', { class: 'card' }, h('h1', {}, 'Sign in to the ' + consoleName), notice ? h('p', { class: 'notice' }, notice) : null, form))
  user.focus()
}

/** The change-password form of the signed-in user. */
export function changePasswordForm({ api }) {
  const error = alertBox('password-error')
  const done = h('div', { 'aria-live': 'polite' })
  const current = h('input', { type: 'password', id: 'current-password', autocomplete: 'current-password', required: true })
  const next = h('input', { type: 'password', id: 'new-password', autocomplete: 'new-password', required: true, minlength: 12, 'aria-describedby': 'new-password-help', 'data-help': 'new-password-help' })
  const again = h('input', { type: 'password', id: 'new-password-again', autocomplete: 'new-password', required: true })
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Change password')
  const form = h(
    'form',
    { novalidate: true },
    h('label', { for: 'current-password' }, 'Current password'),
    current,
    h('label', { for: 'new-password' }, 'New password'),
    next,
    h('p', { class: 'help', id: 'new-password-help' }, 'At least 12 characters. Your other sessions are signed out.'),
    h('label', { for: 'new-password-again' }, 'New password again'),
    again,
    error,
    done,
    h('div', { class: 'actions-row' }, submit),
  )
  form.addEventListener('submit', async (e) => {
    e.preventDefault()
    clearError(error, current, next, again)
    done.replaceChildren()
    if (current.value === '') return showError(error, new Error('Enter your current password.'), current)
    if (next.value.length < 12) return showError(error, new Error('The new password needs at least 12 characters.'), next)
    if (next.value !== again.value) return showError(error, new Error('The two new passwords differ: type the same one twice.'), again)
    submit.disabled = true
    try {
      await api.changePassword(current.value, next.value)
      for (const f of [current, next, again]) f.value = ''
      done.replaceChildren(h('p', { class: 'notice' }, 'Password changed. Your other sessions have been signed out.'))
    } catch (err) {
      showError(error, err, err.code === 'TUN_ERR_CONSOLE_PASSWORD_INVALID' ? next : current, { TUN_ERR_CONSOLE_LOGIN_FAILED: 'The current password is wrong.' })
    } finally {
      submit.disabled = false
    }
  })
  return form
}

/**
 * A console page's signed-in session: the sign-in page, Sign out, the start-up check, and back to
 * sign-in when the server ends the session ('console:signed-out'). The two consoles differ only in
 * their paths and words: `loginPath`, `afterSignIn(next)` (where to go, given the path the page was
 * on), and `notice()` (what the sign-in page says first, if anything).
 */
export function createSessionShell({ api, router, consoleName, loginPath, afterSignIn, notice = () => undefined }) {
  const shell = {
    /** the signed-in session ({ user, … }), or null */
    session: null,
    async signOut() {
      if (!(await router.mayLeave())) return
      router.stop()
      try {
        await api.signOut()
      } finally {
        shell.session = null
        shell.signIn('You have signed out.')
      }
    },
    signIn(message) {
      router.stop()
      router.release()
      if (location.pathname !== loginPath) history.replaceState({ next: location.pathname }, '', loginPath)
      renderSignIn({
        api,
        consoleName,
        notice: message ?? notice(),
        onSignedIn: (s) => {
          shell.session = s
          router.go(afterSignIn(history.state && history.state.next), { replace: true })
        },
      })
    },
    /** Asks the server for the session; `show()` draws the page when there is one. */
    async start(show) {
      try {
        shell.session = await api.session()
      } catch (err) {
        render('Error · ' + consoleName, h('h1', {}, 'The console cannot start'), h('p', { class: 'alert' }, err.message))
        return
      }
      if (shell.session === null) shell.signIn()
      else show()
    },
  }
  window.addEventListener('console:signed-out', () => {
    shell.session = null
    shell.signIn('Your session has ended. Sign in again.')
  })
  return shell
}

/**
 * The top bar: console name, navigation (links marked current), the signed-in user and Sign out.
 * `nav` is [{ href, label, current }]; `session` null shows the bar signed out.
 */
export function setHeader(session, nav = [], onSignOut = null) {
  const bar = document.getElementById('topbar-user')
  const list = document.getElementById('topbar-nav')
  if (list) list.replaceChildren(...(session ? nav.map((n) => h('li', {}, h('a', { href: n.href, 'aria-current': n.current ? 'page' : null, 'data-nav': '' }, n.label))) : []))
  if (!bar) return
  if (!session) {
    bar.replaceChildren()
    return
  }
  const out = h('button', { type: 'button' }, 'Sign out')
  out.addEventListener('click', () => onSignOut && onSignOut())
  bar.replaceChildren(h('span', {}, 'Signed in as ', h('strong', {}, session.user.username)), out)
}

/**
 * A tiny router: `routes` is [[RegExp, (match) => view]]. Links with data-nav move without a reload;
 * Back and Forward redraw. A view that shows a secret not yet copied calls `hold(message)`: leaving
 * it, by a link, Back, a reload or closing the tab, asks first.
 */
export function createRouter(routes, notFound) {
  let stopCurrent = null
  let holding = null
  function show() {
    if (stopCurrent) stopCurrent()
    stopCurrent = null
    holding = null
    const path = location.pathname
    for (const [pattern, view] of routes) {
      const m = pattern.exec(path)
      if (m) {
        const stop = view(m)
        stopCurrent = typeof stop === 'function' ? stop : null
        return
      }
    }
    notFound()
  }
  async function mayLeave() {
    if (holding === null) return true
    const leave = await confirmDialog({ title: holding.title, body: holding.body, confirmLabel: 'Leave without it', cancelLabel: 'Stay on this page', danger: true })
    if (leave) holding = null
    return leave
  }
  async function go(path, { replace } = {}) {
    if (!(await mayLeave())) return
    if (replace) history.replaceState(null, '', path)
    else history.pushState(null, '', path)
    show()
  }
  document.addEventListener('click', (e) => {
    const a = e.target instanceof Element ? e.target.closest('a[data-nav]') : null
    if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return
    e.preventDefault()
    void go(a.getAttribute('href'))
  })
  window.addEventListener('popstate', async () => {
    if (holding === null) return show()
    // Back from a page holding a secret: stay (the entry comes back) unless the person says so.
    const target = location.pathname
    history.pushState(null, '', holding.path)
    if (await mayLeave()) {
      history.replaceState(null, '', target)
      show()
    }
  })
  window.addEventListener('beforeunload', (e) => {
    if (holding === null) return
    e.preventDefault()
    e.returnValue = ''
  })
  return {
    show,
    go,
    mayLeave,
    stop: () => { if (stopCurrent) stopCurrent(); stopCurrent = null },
    /**
     * A step a view draws later without a route change (the add-key wizard's last step) hands its
     * stop() here, so its poll ends with the view instead of running on under the next page.
     */
    own(stop) {
      const before = stopCurrent
      stopCurrent = () => {
        if (before) before()
        stop()
      }
    },
    /** Asks before leaving the current view (until release() or the next view). */
    hold(title, body) {
      holding = { title, body, path: location.pathname }
    },
    release() {
      holding = null
    },
  }
}

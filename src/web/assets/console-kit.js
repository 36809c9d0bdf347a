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

/** A client of one console's JSON API. `sessionPath` is its session resource. */
export function createApi(sessionPath) {
  let csrfToken = null
  async function call(method, path, body) {
    const headers = { accept: 'application/json' }
    if (body !== undefined) headers['content-type'] = 'application/json'
    if (method !== 'GET' && csrfToken !== null) headers['x-csrf-token'] = csrfToken
    let res
    try {
      res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin', cache: 'no-store' })
    } catch {
      throw new ApiError(0, 'NETWORK', 'The console cannot reach its server. Check that it is running, then try again.')
    }
    const text = await res.text()
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
  const name = status ?? 'NONE'
  return h('span', { class: 'status status-' + name }, status ?? 'NO KEY')
}

/** A local date and time a person reads easily; the ISO value stays in a <time> element. */
export function when(iso) {
  if (!iso) return '—'
  const d = new Date(iso)
  return h('time', { datetime: iso }, d.toLocaleString())
}

let liveRegion = null
/** Says `message` to screen readers through the page's polite live region. */
export function announce(message) {
  if (liveRegion === null) liveRegion = document.getElementById('announcer')
  if (liveRegion === null) return
  liveRegion.textContent = ''
  setTimeout(() => { liveRegion.textContent = message }, 50)
}

/** A button that copies `text()` to the clipboard and says so. */
export function copyButton(label, text) {
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
    setTimeout(() => { button.textContent = label }, 2000)
  })
  return button
}

/**
 * Calls `tick` now and every `intervalMs` until the returned stop() is called; skips while the tab
 * is hidden, and never runs two ticks at once.
 */
export function poll(tick, intervalMs) {
  let stopped = false
  let running = false
  const run = async () => {
    if (stopped || running || document.hidden) return
    running = true
    try {
      await tick()
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) window.dispatchEvent(new Event('console:signed-out'))
    } finally {
      running = false
    }
  }
  void run()
  const timer = setInterval(run, intervalMs)
  return () => {
    stopped = true
    clearInterval(timer)
  }
}

/** A modal question; resolves true when the person confirms. */
export function confirmDialog({ title, body, confirmLabel, danger }) {
  return new Promise((resolve) => {
    const titleId = 'dialog-title-' + Math.random().toString(36).slice(2)
    const cancel = h('button', { type: 'button', value: 'cancel' }, 'Cancel')
    const ok = h('button', { type: 'button', class: danger ? 'danger' : 'primary', value: 'ok' }, confirmLabel)
    const dialog = h('dialog', { 'aria-labelledby': titleId }, h('h2', { id: titleId }, title), ...[].concat(body).map((p) => h('p', {}, p)), h('div', { class: 'actions-row' }, cancel, ok))
    const finish = (answer) => {
      dialog.close()
      dialog.remove()
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
  const titleId = 'dialog-title-' + Math.random().toString(36).slice(2)
  const inputId = 'dialog-value-' + Math.random().toString(36).slice(2)
  const input = h('input', { type: 'text', id: inputId, readonly: true, value })
  const close = h('button', { type: 'button' }, 'Close')
  const dialog = h('dialog', { 'aria-labelledby': titleId }, h('h2', { id: titleId }, title), h('label', { for: inputId }, label), input, note ? h('p', { class: 'help' }, note) : null, h('div', { class: 'actions-row' }, copyButton('Copy', () => value), close))
  close.addEventListener('click', () => {
    dialog.close()
    dialog.remove()
  })
  dialog.addEventListener('close', () => dialog.remove())
  document.body.append(dialog)
  dialog.showModal()
  input.select()
}

/** An error region tied to a form: role=alert so it is read out when it fills. */
export function alertBox(id) {
  return h('div', { class: 'alert', role: 'alert', id })
}

/** Shows `err` in `box`, marks `field` invalid and points it at the message. */
export function showError(box, err, field) {
  box.textContent = err instanceof ApiError ? err.message + (err.code && err.code.startsWith('TUN_ERR_') ? ' (' + err.code + ')' : '') : String(err && err.message ? err.message : err)
  if (field) {
    field.setAttribute('aria-invalid', 'true')
    field.setAttribute('aria-describedby', box.id)
    field.focus()
  }
}

export function clearError(box, field) {
  box.textContent = ''
  if (field) {
    field.removeAttribute('aria-invalid')
    field.removeAttribute('aria-describedby')
  }
}

/** Replaces the page's main content, names the page, and moves focus to its heading. */
export function render(title, ...content) {
  const main = document.getElementById('main')
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
    clearError(error, pass)
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
 * Back and Forward redraw.
 */
export function createRouter(routes, notFound) {
  let stopCurrent = null
  function show() {
    if (stopCurrent) stopCurrent()
    stopCurrent = null
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
  function go(path, { replace } = {}) {
    if (replace) history.replaceState(null, '', path)
    else history.pushState(null, '', path)
    show()
  }
  document.addEventListener('click', (e) => {
    const a = e.target instanceof Element ? e.target.closest('a[data-nav]') : null
    if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return
    e.preventDefault()
    go(a.getAttribute('href'))
  })
  window.addEventListener('popstate', show)
  return { show, go, stop: () => { if (stopCurrent) stopCurrent(); stopCurrent = null } }
}

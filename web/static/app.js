// roomledger's page: plain JavaScript, no build step, no dependencies. It reads the JSON API
// (/api/v1/...) and follows live changes through the server-sent event stream
// (/api/v1/stream). Hash routes keep every view linkable:
//   #/rooms?q=&provider=&app=         live rooms
//   #/room/{provider}/{app}/{room}    one room
//   #/participant[/{provider}/{app}/{identity}]
//   #/usage?provider=&app=&days=      participant minutes per day
//   #/events?provider=&room=&outcome= the webhook log
// Everything is drawn with DOM nodes and textContent, never innerHTML with data, so room and
// participant names from webhooks cannot inject markup.
'use strict';

// ----- errors ----------------------------------------------------------------------------
// Kept on window so the end-to-end tests (and an operator with devtools) can read them.
const pageErrors = [];
window.__roomledgerErrors = pageErrors;
window.addEventListener('error', (event) => {
  const target = event.target;
  if (target && target !== window && (target.src || target.href)) {
    pageErrors.push(`failed to load ${target.src || target.href}`);
  } else {
    pageErrors.push(String(event.message || event.error));
  }
}, true);
window.addEventListener('unhandledrejection', (event) => {
  pageErrors.push(`unhandled rejection: ${event.reason}`);
});
document.addEventListener('securitypolicyviolation', (event) => {
  pageErrors.push(`content security policy: ${event.violatedDirective} ${event.blockedURI}`);
});
const consoleError = console.error.bind(console);
console.error = (...args) => {
  pageErrors.push(args.map(String).join(' '));
  consoleError(...args);
};

// ----- small helpers ---------------------------------------------------------------------

const PROVIDERS = ['agora', 'livekit', 'plugnmeet', 'twitch', 'acrcloud'];
const PROVIDER_NAMES = {
  agora: 'Agora', livekit: 'LiveKit', plugnmeet: 'plugNmeet', twitch: 'Twitch', acrcloud: 'ACRCloud',
};

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  setAttrs(el, attrs);
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

function setAttrs(el, attrs) {
  if (!attrs) return;
  for (const [key, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (key === 'class') el.setAttribute('class', value);
    else if (key === 'text') el.textContent = value;
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
}

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

const enc = encodeURIComponent;
const numberFormat = new Intl.NumberFormat();
const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const dateTimeFormat = new Intl.DateTimeFormat(undefined, {
  month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
});
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const dayFormat = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', timeZone: 'UTC' });
const longDayFormat = new Intl.DateTimeFormat(undefined, {
  weekday: 'short', month: 'short', day: 'numeric', year: 'numeric', timeZone: 'UTC',
});

function fmtNumber(n) {
  return n == null || Number.isNaN(n) ? '–' : numberFormat.format(n);
}

function pad(n) {
  return String(n).padStart(2, '0');
}

function fmtDuration(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return '–';
  let s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const hours = Math.floor(s / 3600);
  s -= hours * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  if (d) return `${d}d ${hours}h`;
  if (hours) return `${hours}h ${pad(m)}m`;
  if (m) return `${m}m ${pad(s)}s`;
  return `${s}s`;
}

function fmtMinutes(seconds) {
  const minutes = (seconds || 0) / 60;
  if (minutes >= 100) return numberFormat.format(Math.round(minutes));
  return numberFormat.format(Math.round(minutes * 10) / 10);
}

function sameDay(a, b) {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

function when(iso) {
  if (!iso) return h('span', { class: 'muted', text: '–' });
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return h('span', { text: iso });
  const text = sameDay(date, new Date()) ? timeFormat.format(date) : dateTimeFormat.format(date);
  return h('time', { datetime: iso, title: fullFormat.format(date), text });
}

function secondsSince(iso, now) {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : Math.max(0, (now - t) / 1000);
}

function localMidnight() {
  const d = new Date();
  d.setHours(0, 0, 0, 0);
  return d;
}

function debounce(fn, ms) {
  let timer = 0;
  const wrapped = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
  wrapped.cancel = () => clearTimeout(timer);
  return wrapped;
}

// Runs `fn` at most once per `ms`, and always once more after the last call.
function throttle(fn, ms) {
  let timer = 0;
  let last = 0;
  const wrapped = () => {
    if (timer) return;
    const wait = Math.max(0, last + ms - Date.now());
    timer = setTimeout(() => {
      timer = 0;
      last = Date.now();
      fn();
    }, wait);
  };
  wrapped.cancel = () => {
    clearTimeout(timer);
    timer = 0;
  };
  return wrapped;
}

function query(params) {
  if (!params) return '';
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value != null && value !== '') search.set(key, value);
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

function roomKey(r) {
  return `${r.provider}/${r.app}/${r.room}`;
}

function roomHref(r) {
  return `#/room/${enc(r.provider)}/${enc(r.app)}/${enc(r.room)}`;
}

function participantHref(provider, app, identity) {
  return `#/participant/${enc(provider)}/${enc(app)}/${enc(identity)}`;
}

function providerChip(provider) {
  return h('span', { class: 'provider', text: PROVIDER_NAMES[provider] || provider });
}

function providerSelect(id, value) {
  return h('select', { id, name: 'provider' },
    h('option', { value: '', text: 'All providers' }),
    PROVIDERS.map((p) => h('option', { value: p, selected: p === value, text: PROVIDER_NAMES[p] })));
}

function field(label, control, grow) {
  return h('div', { class: grow ? 'field grow' : 'field' },
    h('label', { for: control.id, text: label }), control);
}

function cell(label, ...children) {
  return h('td', { 'data-label': label }, ...children);
}

function emptyState(title, text) {
  return h('div', { class: 'empty' }, h('strong', { text: title }), text ? h('span', { text }) : null);
}

// ----- the API ---------------------------------------------------------------------------

const TOKEN_KEY = 'roomledger.api_token';
let token = sessionStorage.getItem(TOKEN_KEY) || '';

class HttpError extends Error {
  constructor(status, body) {
    super((body && body.message) || (status ? `the server answered ${status}` : 'the server could not be reached'));
    this.status = status;
    this.body = body;
  }
}

async function api(path, params) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(path + query(params), { headers, cache: 'no-store' });
  } catch (_) {
    throw new HttpError(0, null);
  }
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null;
  }
  if (response.status === 401) auth.required();
  if (!response.ok) throw new HttpError(response.status, body);
  return body;
}

// Fetches up to `maxPages` pages of a cursor-paged list; `complete` says whether it ended.
async function collect(path, params, key, maxPages) {
  const items = [];
  let cursor = '';
  for (let page = 0; page < maxPages; page += 1) {
    const body = await api(path, { ...params, limit: 1000, cursor });
    items.push(...(body[key] || []));
    cursor = body.next_cursor;
    if (!cursor) return { items, complete: true };
  }
  return { items, complete: false };
}

// ----- the header: totals and connection state ---------------------------------------------

const header = {
  setTotals(totals) {
    if (!totals) return;
    setText(document.getElementById('total-participants'), fmtNumber(totals.participants));
    setText(document.getElementById('total-participants-label'), totals.participants === 1 ? 'participant' : 'participants');
    setText(document.getElementById('total-rooms'), fmtNumber(totals.rooms));
    setText(document.getElementById('total-rooms-label'), totals.rooms === 1 ? 'room' : 'rooms');
  },
  setConnection(state) {
    const el = document.getElementById('conn');
    el.dataset.state = state;
    const text = {
      connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…', offline: 'Offline', locked: 'Signed out',
    }[state];
    setText(document.getElementById('conn-text'), text);
  },
  setNav(name) {
    for (const link of document.querySelectorAll('.mainnav a')) {
      if (link.dataset.nav === name) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
  },
};

// ----- the live stream ---------------------------------------------------------------------

const live = {
  source: null,
  lastId: '',
  retryMs: 1000,
  timer: 0,

  connect() {
    this.close();
    // EventSource cannot send headers: the token goes in the query, as the API allows. After
    // a reconnect by hand, `since` resumes where the last stream stopped.
    const source = new EventSource(`/api/v1/stream${query({ token, since: this.lastId })}`);
    this.source = source;
    source.addEventListener('open', () => {
      this.retryMs = 1000;
      header.setConnection('live');
    });
    source.addEventListener('hello', (event) => {
      const data = JSON.parse(event.data);
      if (event.lastEventId) this.lastId = event.lastEventId;
      // A fresh stream may differ from what a view fetched before. (An id from before a
      // server restart gets a reset, not a resumed hello.)
      if (!data.resumed) router.dispatch('resync');
    });
    source.addEventListener('reset', (event) => {
      this.lastId = event.lastEventId;
      router.dispatch('resync');
    });
    source.addEventListener('room', (event) => {
      this.lastId = event.lastEventId;
      router.dispatch('room', JSON.parse(event.data));
    });
    source.addEventListener('totals', (event) => {
      const totals = JSON.parse(event.data);
      header.setTotals(totals);
      router.dispatch('totals', totals);
    });
    source.addEventListener('error', () => {
      if (source.readyState === EventSource.CLOSED) {
        // The browser gives up on an error answer (a 401, a 503): retry by hand, slower.
        header.setConnection('offline');
        this.source = null;
        clearTimeout(this.timer);
        this.timer = setTimeout(() => this.reconnect(), this.retryMs);
        this.retryMs = Math.min(this.retryMs * 2, 30000);
      } else {
        header.setConnection('reconnecting');
      }
    });
  },

  async reconnect() {
    try {
      await api('/api/v1/rooms', { limit: 1 });
    } catch (err) {
      if (err.status === 401) return;
    }
    this.connect();
  },

  close() {
    clearTimeout(this.timer);
    if (this.source) this.source.close();
    this.source = null;
  },
};

// ----- sign-in when [server] api_token is set ------------------------------------------------

const auth = {
  showing: false,

  required() {
    if (this.showing) return;
    this.showing = true;
    live.close();
    header.setConnection('locked');
    router.stop();
    const main = document.getElementById('main');
    const input = h('input', {
      id: 'token', name: 'token', type: 'password', autocomplete: 'current-password', required: true,
      'aria-describedby': 'token-help',
    });
    const error = h('p', { class: 'error', id: 'token-error', role: 'alert' });
    const button = h('button', { class: 'button primary', type: 'submit', text: 'Continue' });
    const form = h('form', { id: 'signin-form', onsubmit: (event) => this.submit(event, input, error, button) },
      field('API token', input, true), error, button);
    const title = h('h1', { tabindex: '-1', text: 'Sign in to roomledger' });
    main.replaceChildren(h('section', { class: 'card signin', 'aria-labelledby': 'signin-title' },
      Object.assign(title, { id: 'signin-title' }),
      h('p', { id: 'token-help', text: token
        ? 'The saved token was not accepted. Enter the API token configured for this server.'
        : 'This server requires the API token set in [server] api_token. It is kept only for this browser tab.' }),
      form));
    document.title = 'Sign in · roomledger';
    input.focus();
  },

  async submit(event, input, error, button) {
    event.preventDefault();
    const candidate = input.value.trim();
    if (!candidate) return;
    button.disabled = true;
    error.textContent = '';
    const previous = token;
    token = candidate;
    try {
      const body = await fetch(`/api/v1/rooms${query({ limit: 1 })}`, {
        headers: { Accept: 'application/json', Authorization: `Bearer ${candidate}` }, cache: 'no-store',
      });
      if (body.status === 401) {
        token = previous;
        error.textContent = 'That token was not accepted.';
        input.select();
        return;
      }
    } catch (_) {
      token = previous;
      error.textContent = 'The server could not be reached. Try again.';
      return;
    } finally {
      button.disabled = false;
    }
    sessionStorage.setItem(TOKEN_KEY, candidate);
    this.showing = false;
    live.connect();
    router.start(true);
  },
};

// ----- views -----------------------------------------------------------------------------
// A view is a function (main, args, params) returning a controller with optional hooks:
// room(change), totals(t), resync(), tick(), resize(), destroy().

function errorBox(err, retry) {
  const box = h('div', { class: 'error-box', role: 'alert' },
    h('strong', { text: 'Could not load this. ' }), h('span', { text: err.message }), ' ');
  if (retry) box.append(h('button', { class: 'button', type: 'button', onclick: retry, text: 'Try again' }));
  return box;
}

function viewHead(title, subtitle, ...extra) {
  return h('div', { class: 'view-head' },
    h('h1', { tabindex: '-1', text: title }), ...extra,
    subtitle ? h('p', { class: 'sub', text: subtitle }) : null);
}

function pager(onPrev, onNext) {
  const prev = h('button', { class: 'button', type: 'button', onclick: onPrev, text: '← Previous' });
  const next = h('button', { class: 'button', type: 'button', onclick: onNext, text: 'Next →' });
  const where = h('span', { class: 'where', 'aria-live': 'polite' });
  const el = h('nav', { class: 'pager', 'aria-label': 'Pages' }, prev, where, next);
  return {
    el,
    update(page, hasPrev, hasNext) {
      prev.disabled = !hasPrev;
      next.disabled = !hasNext;
      setText(where, page ? `Page ${page}` : '');
      el.hidden = !hasPrev && !hasNext;
    },
  };
}

// A cursor-paged list: remembers the cursors of earlier pages for "Previous".
function cursorPages() {
  return {
    cursor: '',
    earlier: [],
    next: null,
    page() { return this.earlier.length + 1; },
    forward() { this.earlier.push(this.cursor); this.cursor = this.next; },
    back() { this.cursor = this.earlier.pop() || ''; },
    restart() { this.cursor = ''; this.earlier = []; },
  };
}

const PROVIDER_ORDER = Object.fromEntries(PROVIDERS.map((p, i) => [p, i]));

// The API's order: most participants first, then provider, app and room name.
function compareRooms(a, b) {
  return b.participants - a.participants
    || (PROVIDER_ORDER[a.provider] ?? 99) - (PROVIDER_ORDER[b.provider] ?? 99)
    || (a.app < b.app ? -1 : a.app > b.app ? 1 : 0)
    || (a.room < b.room ? -1 : a.room > b.room ? 1 : 0);
}

function roomsView(main, _args, params) {
  const PAGE = 50;
  const filters = {
    q: params.get('q') || '', provider: params.get('provider') || '', app: params.get('app') || '',
  };
  const pages = cursorPages();
  let rows = [];
  let loading = false;
  let queued = [];
  let generation = 0;
  const rowEls = new Map();

  const search = h('input', {
    id: 'q', type: 'search', placeholder: 'Room name', autocomplete: 'off', value: filters.q,
    'aria-controls': 'rooms-table',
  });
  const provider = providerSelect('provider', filters.provider);
  const app = h('input', {
    id: 'app', type: 'text', placeholder: 'Any app', autocomplete: 'off', value: filters.app, list: 'apps',
  });
  const apps = h('datalist', { id: 'apps' });
  const tbody = h('tbody');
  const table = h('table', { class: 'table rooms', id: 'rooms-table', 'aria-describedby': 'rooms-caption' },
    h('caption', { class: 'visually-hidden', id: 'rooms-caption', text: 'Live rooms, most participants first' }),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col', text: 'Room' }),
      h('th', { scope: 'col', text: 'Provider' }),
      h('th', { scope: 'col', text: 'App' }),
      h('th', { scope: 'col', class: 'num', text: 'Participants' }),
      h('th', { scope: 'col', text: 'Live for' }))),
    tbody);
  const empty = h('div', { hidden: true });
  const problem = h('div');
  const pageNav = pager(() => { pages.back(); reload(); }, () => { pages.forward(); reload(); });

  main.replaceChildren(
    viewHead('Live rooms', 'Most participants first. Counts update as webhooks arrive.'),
    h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter rooms', onsubmit: (e) => e.preventDefault() },
      field('Search rooms', search, true), field('Provider', provider), field('App', app), apps),
    problem,
    h('div', { class: 'card' }, table, empty, pageNav.el));

  const changed = () => {
    filters.q = search.value.trim();
    filters.provider = provider.value;
    filters.app = app.value.trim();
    history.replaceState(null, '', `#/rooms${query(filters)}`);
    pages.restart();
    reload();
  };
  const changedSoon = debounce(changed, 250);
  search.addEventListener('input', changedSoon);
  app.addEventListener('input', changedSoon);
  provider.addEventListener('change', changed);

  function matches(change) {
    return (!filters.provider || change.provider === filters.provider)
      && (!filters.app || change.app === filters.app)
      && (!filters.q || change.room.toLowerCase().includes(filters.q.toLowerCase()));
  }

  async function reload() {
    const mine = ++generation;
    loading = true;
    queued = [];
    table.setAttribute('aria-busy', 'true');
    try {
      const body = await api('/api/v1/rooms', { ...filters, limit: PAGE, cursor: pages.cursor });
      if (mine !== generation) return;
      rows = (body.rooms || []).map((r) => ({ ...r, key: roomKey(r) }));
      pages.next = body.next_cursor || null;
      header.setTotals(body.totals);
      problem.replaceChildren();
      // Changes that arrived while the page was on its way are newer than or as new as it.
      const pending = queued;
      queued = [];
      loading = false;
      for (const change of pending) apply(change);
      render();
    } catch (err) {
      if (mine !== generation) return;
      loading = false;
      if (err.status !== 401) problem.replaceChildren(errorBox(err, reload));
    } finally {
      if (mine === generation) table.removeAttribute('aria-busy');
    }
  }

  function apply(change) {
    if (!matches(change)) return;
    const key = roomKey(change);
    const row = rows.find((r) => r.key === key);
    if (row) {
      if (change.participants == null) {
        row.ended = row.ended || Date.now();
      } else {
        row.participants = change.participants;
        row.started_at = change.started_at;
        row.ended = 0;
      }
      row.flash = true;
    } else if (change.participants != null && pages.page() === 1 && rows.length < PAGE + 10) {
      // On the first page a room joins in when it ranks among the rooms shown; later pages
      // only follow the rooms they already show, or their order would drift from the cursor.
      const smallest = rows.reduce((min, r) => Math.min(min, r.participants), Infinity);
      if (rows.length < PAGE || change.participants >= smallest) {
        rows.push({ ...change, key, flash: true });
      }
    }
    rows.sort(compareRooms);
    // Past a page the API's cursor no longer follows the rows shown: fetch the page again,
    // at most once a second however busy the stream is.
    if (rows.length > PAGE) reloadSoon();
  }
  const reloadSoon = throttle(() => reload(), 1000);

  let frame = 0;
  function renderSoon() {
    if (!frame) frame = requestAnimationFrame(() => { frame = 0; render(); });
  }

  function rowEl(r, max) {
    let tr = rowEls.get(r.key);
    if (!tr) {
      const link = h('a', { href: roomHref(r), class: 'name', text: r.room });
      tr = h('tr', { 'data-key': r.key },
        cell('Room', link),
        h('td', { class: 'nolabel', 'data-label': 'Provider' }, providerChip(r.provider)),
        h('td', { class: 'nolabel', 'data-label': 'App' }, h('span', { class: 'id', text: r.app })),
        h('td', { class: 'num primary', 'data-label': 'Participants' },
          h('span', { class: 'count' }), h('span', { class: 'meter', 'aria-hidden': 'true' }, h('span'))),
        h('td', { class: 'time live-for', 'data-label': 'Live for' }));
      rowEls.set(r.key, tr);
    }
    setText(tr.querySelector('.count'), fmtNumber(r.participants));
    tr.querySelector('.meter > span').style.width = `${Math.round((r.participants / max) * 100)}%`;
    tr.dataset.started = r.started_at || '';
    tr.classList.toggle('ended', Boolean(r.ended));
    if (r.flash) {
      r.flash = false;
      tr.classList.remove('flash');
      void tr.offsetWidth; // restarts the highlight animation
      tr.classList.add('flash');
    }
    return tr;
  }

  function render() {
    const now = Date.now();
    rows = rows.filter((r) => !r.ended || now - r.ended < 2500);
    const max = Math.max(1, ...rows.map((r) => r.participants));
    const wanted = rows.map((r) => rowEl(r, max));
    const keep = new Set(rows.map((r) => r.key));
    for (const [key, tr] of rowEls) {
      if (!keep.has(key)) {
        tr.remove();
        rowEls.delete(key);
      }
    }
    // Moving rows under a keyboard user's focus would throw it away: keep the order until
    // focus leaves the table.
    const focusInside = tbody.contains(document.activeElement);
    wanted.forEach((tr, i) => {
      if (!tr.isConnected) tbody.append(tr);
      else if (!focusInside && tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null);
    });
    tickTimes(now);
    const filtered = filters.q || filters.provider || filters.app;
    empty.hidden = rows.length > 0;
    table.hidden = rows.length === 0;
    if (!rows.length) {
      empty.replaceChildren(filtered
        ? emptyState('No live rooms match these filters.', 'Rooms appear here the moment a webhook reports them.')
        : emptyState('No live rooms right now.', 'Rooms appear here the moment a provider sends a webhook for them.'));
      if (filtered) {
        empty.firstChild.append(h('p', {}, h('button', {
          class: 'button', type: 'button', text: 'Clear filters',
          onclick: () => {
            search.value = '';
            provider.value = '';
            app.value = '';
            changed();
            search.focus();
          },
        })));
      }
    }
    pageNav.update(pages.page(), pages.earlier.length > 0 || pages.cursor !== '', Boolean(pages.next));
    const seenApps = [...new Set(rows.map((r) => r.app))].slice(0, 50);
    apps.replaceChildren(...seenApps.map((a) => h('option', { value: a })));
  }

  function tickTimes(now) {
    for (const tr of rowEls.values()) {
      const seconds = tr.dataset.started ? secondsSince(tr.dataset.started, now) : null;
      setText(tr.lastChild, fmtDuration(seconds));
    }
  }

  reload();
  return {
    room(change) {
      if (loading) {
        queued.push(change);
        return;
      }
      apply(change);
      renderSoon();
    },
    resync: reload,
    tick() {
      const now = Date.now();
      if (rows.some((r) => r.ended)) render();
      else tickTimes(now);
    },
    destroy() {
      generation += 1;
      changedSoon.cancel();
      reloadSoon.cancel();
      cancelAnimationFrame(frame);
    },
  };
}

function sessionsTable(kind, id) {
  const columns = kind === 'room'
    ? ['Participant', 'Joined', 'Left', 'Duration', 'Reason']
    : ['Room', 'Joined', 'Left', 'Duration', 'Role', 'Reason'];
  const tbody = h('tbody');
  const table = h('table', { class: 'table', id },
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', {
      scope: 'col', class: c === 'Duration' ? 'num' : null, text: c,
    })))),
    tbody);
  return {
    table,
    fill(sessions, provider, app) {
      tbody.replaceChildren(...sessions.map((s) => {
        const first = kind === 'room'
          ? cell('Participant', h('a', {
            class: 'name', href: participantHref(provider, app, s.participant), text: s.name || s.participant,
          }), s.name && s.name !== s.participant ? h('div', { class: 'id', text: s.participant }) : null)
          : cell('Room', h('a', { class: 'name', href: roomHref(s), text: s.room }), h('div', { class: 'id', text: `${PROVIDER_NAMES[s.provider] || s.provider} · ${s.app}` }));
        return h('tr', {},
          first,
          h('td', { class: 'time', 'data-label': 'Joined' }, when(s.joined_at)),
          h('td', { class: 'time', 'data-label': 'Left' }, when(s.left_at)),
          h('td', { class: 'num primary', 'data-label': 'Duration', text: fmtDuration(s.duration_seconds) }),
          kind === 'room' ? null : h('td', { class: 'nolabel', 'data-label': 'Role', text: s.role || '–' }),
          h('td', { class: 'muted nolabel', 'data-label': 'Reason', text: s.reason || '–' }));
      }));
    },
  };
}

function roomView(main, [provider, app, room]) {
  const key = roomKey({ provider, app, room });
  const base = `/api/v1/rooms/${enc(provider)}/${enc(app)}/${enc(room)}`;
  let detail = null;
  let today = null; // {finishedSeconds, finishedCount, since}
  let generation = 0;
  const pages = cursorPages();

  const badge = h('span', { class: 'badge' });
  const meta = h('p', { class: 'meta' });
  const statNow = h('div', { class: 'value', id: 'stat-now', text: '–' });
  const statMinutes = h('div', { class: 'value', id: 'stat-minutes', text: '–' });
  const statSessions = h('div', { class: 'value', id: 'stat-sessions', text: '–' });
  const statLive = h('div', { class: 'value', id: 'stat-live-for', text: '–' });
  const problem = h('div');
  const liveBody = h('tbody');
  const liveTable = h('table', { class: 'table', id: 'participants-table' },
    h('thead', {}, h('tr', {},
      ['Name', 'Platform', 'Role', 'Joined', 'Time in room'].map((c) => h('th', {
        scope: 'col', class: c === 'Time in room' ? 'num' : null, text: c,
      })))),
    liveBody);
  const liveEmpty = h('div', { hidden: true }, emptyState('Nobody is in the room right now.'));
  const sessions = sessionsTable('room', 'sessions-table');
  const sessionsEmpty = h('div', { hidden: true }, emptyState('No finished sessions yet.'));
  const sessionsPager = pager(() => { pages.back(); loadSessions(); }, () => { pages.forward(); loadSessions(); });
  const historyBody = h('tbody');
  const historySection = h('section', { class: 'card section', 'aria-labelledby': 'h-history', hidden: true },
    h('div', { class: 'section-head' }, h('h2', { id: 'h-history', text: 'Past meetings' }),
      h('span', { class: 'hint', text: 'Earlier instances of this room' })),
    h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, ['Started', 'Ended', 'Duration', 'Peak', 'Participant minutes'].map((c, i) => h('th', {
        scope: 'col', class: i >= 2 ? 'num' : null, text: c,
      })))),
      historyBody));

  main.replaceChildren(
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' },
      h('a', { href: '#/rooms', text: 'Live rooms' }), h('span', { class: 'sep', 'aria-hidden': 'true', text: '/' }),
      h('span', { text: `${PROVIDER_NAMES[provider] || provider} · ${app}` })),
    viewHead(room, null, badge),
    meta,
    problem,
    h('div', { class: 'stats' },
      h('div', { class: 'stat' }, h('div', { class: 'label', text: 'In the room now' }), statNow),
      h('div', { class: 'stat' }, h('div', { class: 'label', text: 'Participant minutes today' }), statMinutes),
      h('div', { class: 'stat' }, h('div', { class: 'label', text: 'Sessions today' }), statSessions),
      h('div', { class: 'stat' }, h('div', { class: 'label', text: 'Live for' }), statLive)),
    h('section', { class: 'card section', 'aria-labelledby': 'h-live' },
      h('div', { class: 'section-head' }, h('h2', { id: 'h-live', text: 'In the room now' }),
        h('span', { class: 'hint', text: 'Updates live' })),
      liveTable, liveEmpty),
    h('section', { class: 'card section', 'aria-labelledby': 'h-sessions' },
      h('div', { class: 'section-head' }, h('h2', { id: 'h-sessions', text: 'Finished sessions' }),
        h('span', { class: 'hint', text: 'Newest first' })),
      sessions.table, sessionsEmpty, sessionsPager.el),
    historySection);
  document.title = `${room} · roomledger`;

  async function loadDetail() {
    const mine = generation;
    try {
      const previous = detail;
      detail = await api(base);
      if (mine !== generation) return;
      // Time in room counts from the server's `seconds`, so a browser clock that is off does
      // not show negative or inflated times.
      const fetched = Date.now();
      for (const p of detail.participants || []) {
        p.joinedMs = typeof p.seconds === 'number' ? fetched - p.seconds * 1000 : Date.parse(p.joined_at);
      }
      countDeparted(previous, detail);
      problem.replaceChildren();
      renderDetail();
    } catch (err) {
      if (mine !== generation || err.status === 401) return;
      if (err.status === 404) {
        main.replaceChildren(
          h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/rooms', text: 'Live rooms' })),
          viewHead(room),
          h('div', { class: 'card' }, emptyState('roomledger has never seen this room.',
            `No webhook has mentioned ${room} of ${PROVIDER_NAMES[provider] || provider} app ${app}.`)));
        generation += 1;
        return;
      }
      problem.replaceChildren(errorBox(err, refresh));
    }
  }

  function renderDetail() {
    badge.className = detail.live ? 'badge live' : 'badge';
    setText(badge, detail.live ? 'Live' : 'Not live');
    meta.replaceChildren(
      providerChip(provider),
      h('span', {}, 'App ', h('span', { class: 'id', text: app })),
      detail.started_at ? h('span', {}, 'Started ', when(detail.started_at)) : null);
    const people = detail.participants || [];
    setText(statNow, fmtNumber(detail.live ? people.length : 0));
    liveEmpty.hidden = people.length > 0;
    liveTable.hidden = people.length === 0;
    liveBody.replaceChildren(...people
      .slice()
      .sort((a, b) => a.joinedMs - b.joinedMs)
      .map((p) => {
        const identity = p.identity || p.id;
        return h('tr', { 'data-joined-ms': p.joinedMs },
          cell('Name', h('a', { class: 'name', href: participantHref(provider, app, identity), text: p.name || identity }),
            p.name && p.name !== identity ? h('div', { class: 'id', text: identity }) : null),
          h('td', { class: 'nolabel', 'data-label': 'Platform', text: p.platform || '–' }),
          h('td', { class: 'nolabel', 'data-label': 'Role', text: p.role || '–' }),
          h('td', { class: 'time', 'data-label': 'Joined' }, when(p.joined_at)),
          h('td', { class: 'num in-room primary', 'data-label': 'Time in room' }));
      }));
    tick();
  }

  async function loadSessions() {
    const mine = generation;
    try {
      const body = await api(`${base}/sessions`, { limit: 20, cursor: pages.cursor });
      if (mine !== generation) return;
      pages.next = body.next_cursor || null;
      const list = body.sessions || [];
      sessions.fill(list, provider, app);
      sessionsEmpty.hidden = list.length > 0 || pages.page() > 1;
      sessions.table.hidden = list.length === 0 && pages.page() === 1;
      sessionsPager.update(pages.page(), pages.earlier.length > 0, Boolean(pages.next));
    } catch (err) {
      if (mine !== generation || err.status === 401 || err.status === 404) return;
      problem.replaceChildren(errorBox(err, refresh));
    }
  }

  // Who left since the last look now has a finished session: count it until the sessions are
  // read again, instead of reading every session of today after each change.
  function countDeparted(before, after) {
    if (!today || !before || !before.live) return;
    const still = new Set((after.live ? after.participants || [] : []).map((p) => p.id));
    const now = Date.now();
    for (const p of before.participants || []) {
      const session = `${p.id}|${p.joined_at}`;
      if (still.has(p.id) || today.sessions.has(session)) continue;
      today.sessions.add(session);
      today.finishedSeconds += Math.max(0, now - Math.max(p.joinedMs, today.since)) / 1000;
      today.finishedCount += 1;
    }
  }

  async function loadToday() {
    const mine = generation;
    const midnight = localMidnight();
    // Sessions are found by join time: one that began yesterday and ended today counts too.
    const from = new Date(midnight.getTime() - 86400000).toISOString();
    try {
      const { items, complete } = await collect(`${base}/sessions`, { from }, 'sessions', 5);
      if (mine !== generation) return;
      let seconds = 0;
      let count = 0;
      const sessions = new Set();
      for (const s of items) {
        sessions.add(`${s.participant_id}|${s.joined_at}`);
        const start = Math.max(Date.parse(s.joined_at), midnight.getTime());
        const end = Date.parse(s.left_at);
        if (end > start) {
          seconds += (end - start) / 1000;
          count += 1;
        }
      }
      today = { finishedSeconds: seconds, finishedCount: count, complete, since: midnight.getTime(), sessions };
      tick();
    } catch (_) {
      // The stat stays blank; the sessions table reports errors.
    }
  }

  async function loadHistory() {
    const mine = generation;
    try {
      const body = await api(`${base}/history`, { limit: 10 });
      if (mine !== generation) return;
      const list = body.history || [];
      historySection.hidden = list.length === 0;
      historyBody.replaceChildren(...list.map((x) => h('tr', {},
        h('td', { class: 'time', 'data-label': 'Started' }, when(x.started_at)),
        h('td', { class: 'time', 'data-label': 'Ended' }, when(x.ended_at)),
        h('td', { class: 'num primary', 'data-label': 'Duration', text: fmtDuration(x.duration_seconds) }),
        h('td', { class: 'num', 'data-label': 'Peak', text: fmtNumber(x.peak_participants) }),
        h('td', { class: 'num', 'data-label': 'Participant minutes', text: fmtMinutes(x.participant_seconds) }))));
    } catch (_) {
      historySection.hidden = true;
    }
  }

  function tick() {
    const now = Date.now();
    for (const tr of liveBody.children) {
      setText(tr.querySelector('.in-room'), fmtDuration((now - Number(tr.dataset.joinedMs)) / 1000));
    }
    if (detail) {
      setText(statLive, detail.live && detail.started_at ? fmtDuration(secondsSince(detail.started_at, now)) : 'Not live');
    }
    if (today && detail) {
      let seconds = today.finishedSeconds;
      for (const p of detail.live ? detail.participants || [] : []) {
        const joined = Math.max(p.joinedMs, today.since);
        seconds += Math.max(0, now - joined) / 1000;
      }
      setText(statMinutes, `${today.complete ? '' : '≥ '}${fmtMinutes(seconds)}`);
      const liveCount = detail.live ? (detail.participants || []).length : 0;
      setText(statSessions, fmtNumber(today.finishedCount + liveCount));
    }
  }

  function refresh() {
    generation += 1;
    problem.replaceChildren();
    loadDetail();
    if (pages.page() === 1) loadSessions();
  }
  const refreshSoon = throttle(refresh, 500);
  const recountSoon = throttle(loadToday, 30000);

  generation += 1;
  loadDetail();
  loadSessions();
  loadToday();
  loadHistory();
  return {
    room(change) {
      if (roomKey(change) === key) {
        refreshSoon();
        recountSoon();
        if (change.participants == null) setTimeout(loadHistory, 800);
      }
    },
    resync() {
      refresh();
      loadToday();
    },
    tick,
    destroy() {
      generation += 1;
      refreshSoon.cancel();
      recountSoon.cancel();
    },
  };
}

function participantLookup(main) {
  const provider = providerSelect('lookup-provider', '');
  provider.required = true;
  provider.firstChild.textContent = 'Choose…';
  const app = h('input', { id: 'lookup-app', type: 'text', required: true, autocomplete: 'off' });
  const identity = h('input', { id: 'lookup-identity', type: 'text', required: true, autocomplete: 'off' });
  main.replaceChildren(
    viewHead('Participants', 'Look up one participant’s sessions across every room of an app.'),
    h('div', { class: 'card lookup' },
      h('p', { text: 'Use the identity your application gives the user: the Agora account, the LiveKit identity. Names in a room’s participant list link here too.' }),
      h('form', {
        class: 'filters', 'aria-label': 'Find a participant',
        onsubmit: (event) => {
          event.preventDefault();
          location.hash = participantHref(provider.value, app.value.trim(), identity.value.trim());
        },
      },
      field('Provider', provider), field('App', app), field('Identity', identity, true),
      h('button', { class: 'button primary', type: 'submit', text: 'Show sessions' }))));
  document.title = 'Participants · roomledger';
  return {};
}

function participantView(main, [provider, app, identity]) {
  const base = `/api/v1/participants/${enc(provider)}/${enc(app)}/${enc(identity)}/sessions`;
  const pages = cursorPages();
  let generation = 0;
  const title = h('h1', { tabindex: '-1', text: identity });
  const statMinutes = h('div', { class: 'value', id: 'stat-total-minutes', text: '–' });
  const statSessions = h('div', { class: 'value', text: '–' });
  const statRooms = h('div', { class: 'value', text: '–' });
  const statLast = h('div', { class: 'value', text: '–' });
  const problem = h('div');
  const sessions = sessionsTable('participant', 'participant-sessions-table');
  const empty = h('div', { hidden: true }, emptyState('No finished sessions for this participant yet.',
    'Sessions are listed when the participant leaves a room.'));
  const sessionsPager = pager(() => { pages.back(); load(); }, () => { pages.forward(); load(); });

  main.replaceChildren(
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' },
      h('a', { href: '#/participant', text: 'Participants' }), h('span', { class: 'sep', 'aria-hidden': 'true', text: '/' }),
      h('span', { text: `${PROVIDER_NAMES[provider] || provider} · ${app}` })),
    h('div', { class: 'view-head' }, title),
    h('p', { class: 'meta' }, providerChip(provider), h('span', {}, 'App ', h('span', { class: 'id', text: app })),
      h('span', {}, 'Identity ', h('span', { class: 'id', text: identity }))),
    problem,
    h('div', { class: 'stats' },
      h('div', { class: 'stat' }, h('div', { class: 'label', text: 'Total participant minutes' }), statMinutes),
      h('div', { class: 'stat' }, h('div', { class: 'label', text: 'Sessions' }), statSessions),
      h('div', { class: 'stat' }, h('div', { class: 'label', text: 'Rooms' }), statRooms),
      h('div', { class: 'stat' }, h('div', { class: 'label', text: 'Last seen' }), statLast)),
    h('section', { class: 'card section', 'aria-labelledby': 'h-psessions' },
      h('div', { class: 'section-head' }, h('h2', { id: 'h-psessions', text: 'Sessions' }),
        h('span', { class: 'hint', text: 'Newest first' })),
      sessions.table, empty, sessionsPager.el));
  document.title = `${identity} · roomledger`;

  async function load() {
    const mine = ++generation;
    try {
      const body = await api(base, { limit: 25, cursor: pages.cursor });
      if (mine !== generation) return;
      const list = body.sessions || [];
      pages.next = body.next_cursor || null;
      sessions.fill(list, provider, app);
      empty.hidden = list.length > 0 || pages.page() > 1;
      sessions.table.hidden = list.length === 0 && pages.page() === 1;
      sessionsPager.update(pages.page(), pages.earlier.length > 0, Boolean(pages.next));
      const named = list.find((s) => s.name && s.name !== s.participant);
      if (named) setText(title, named.name);
    } catch (err) {
      if (mine !== generation || err.status === 401) return;
      problem.replaceChildren(errorBox(err, load));
    }
  }

  async function loadTotals() {
    try {
      const { items, complete } = await collect(base, {}, 'sessions', 10);
      const seconds = items.reduce((sum, s) => sum + (s.duration_seconds || 0), 0);
      const prefix = complete ? '' : '≥ ';
      setText(statMinutes, prefix + fmtMinutes(seconds));
      setText(statSessions, prefix + fmtNumber(items.length));
      setText(statRooms, prefix + fmtNumber(new Set(items.map((s) => roomKey(s))).size));
      statLast.replaceChildren(items.length ? when(items[0].left_at) : '–');
    } catch (_) {
      // The sessions table reports the error.
    }
  }

  load();
  loadTotals();
  return { resync() { load(); loadTotals(); } };
}

// The usage API answers per UTC day; keys are YYYY-MM-DD.
function utcDayKey(ms) {
  return new Date(ms).toISOString().slice(0, 10);
}

function niceCeiling(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * power >= value) return step * power;
  }
  return 10 * power;
}

function usageView(main, _args, params) {
  const filters = {
    provider: params.get('provider') || '', app: params.get('app') || '',
    days: ['7', '30', '90'].includes(params.get('days')) ? params.get('days') : '30',
  };
  let generation = 0;
  let days = [];
  const provider = providerSelect('usage-provider', filters.provider);
  const app = h('input', { id: 'usage-app', type: 'text', placeholder: 'Any app', autocomplete: 'off', value: filters.app });
  const range = h('select', { id: 'usage-days' },
    [['7', 'Last 7 days'], ['30', 'Last 30 days'], ['90', 'Last 90 days']].map(([v, t]) => h('option', {
      value: v, selected: v === filters.days, text: t,
    })));
  const statTotal = h('div', { class: 'value', id: 'usage-total', text: '–' });
  const statSessions = h('div', { class: 'value', text: '–' });
  const statAverage = h('div', { class: 'value', text: '–' });
  const statBusiest = h('div', { class: 'value', text: '–' });
  const stats = h('div', { class: 'stats' },
    h('div', { class: 'stat' }, h('div', { class: 'label', text: 'Participant minutes' }), statTotal),
    h('div', { class: 'stat' }, h('div', { class: 'label', text: 'Sessions' }), statSessions),
    h('div', { class: 'stat' }, h('div', { class: 'label', text: 'Average per day' }), statAverage),
    h('div', { class: 'stat' }, h('div', { class: 'label', text: 'Busiest day' }), statBusiest));
  const chart = h('div', { class: 'chart', id: 'usage-chart' });
  const tableBody = h('tbody');
  const body = h('div', {});

  main.replaceChildren(
    viewHead('Usage', 'Participant minutes per day (UTC), from finished and live sessions.'),
    h('form', { class: 'filters', 'aria-label': 'Filter usage', onsubmit: (e) => e.preventDefault() },
      field('Provider', provider), field('App', app), field('Period', range)),
    body);
  document.title = 'Usage · roomledger';

  const changed = () => {
    filters.provider = provider.value;
    filters.app = app.value.trim();
    filters.days = range.value;
    history.replaceState(null, '', `#/usage${query(filters)}`);
    load();
  };
  const changedSoon = debounce(changed, 300);
  provider.addEventListener('change', changed);
  range.addEventListener('change', changed);
  app.addEventListener('input', changedSoon);

  async function load() {
    const mine = ++generation;
    const count = Number(filters.days);
    const now = Date.now();
    const firstDay = Date.UTC(new Date(now).getUTCFullYear(), new Date(now).getUTCMonth(), new Date(now).getUTCDate())
      - (count - 1) * 86400000;
    body.setAttribute('aria-busy', 'true');
    try {
      const answer = await api('/api/v1/usage', {
        group_by: 'day', provider: filters.provider, app: filters.app,
        from: new Date(firstDay).toISOString(), to: new Date(now).toISOString(),
      });
      if (mine !== generation) return;
      const byDay = new Map();
      for (const g of answer.groups || []) byDay.set(String(g.key).slice(0, 10), g);
      days = [];
      for (let i = 0; i < count; i += 1) {
        const key = utcDayKey(firstDay + i * 86400000);
        const g = byDay.get(key) || {};
        const minutes = g.participant_minutes ?? (g.participant_seconds || 0) / 60;
        days.push({ key, minutes, sessions: g.sessions || 0 });
      }
      renderUsage();
    } catch (err) {
      if (mine !== generation || err.status === 401) return;
      if (err.status === 404) {
        body.replaceChildren(h('div', { class: 'card' }, h('div', { class: 'empty notice', 'data-state': 'unavailable' },
          h('strong', { text: 'Usage reports are not available on this server yet.' }),
          h('span', { text: 'This roomledger does not serve /api/v1/usage. Live rooms and sessions work as usual.' }))));
        return;
      }
      body.replaceChildren(errorBox(err, load));
    } finally {
      if (mine === generation) body.removeAttribute('aria-busy');
    }
  }

  function renderUsage() {
    const total = days.reduce((s, d) => s + d.minutes, 0);
    const sessions = days.reduce((s, d) => s + d.sessions, 0);
    const busiest = days.reduce((best, d) => (d.minutes > (best ? best.minutes : 0) ? d : best), null);
    setText(statTotal, fmtMinutes(total * 60));
    setText(statSessions, fmtNumber(sessions));
    setText(statAverage, fmtMinutes((total * 60) / Math.max(1, days.length)));
    statBusiest.replaceChildren(busiest
      ? h('span', {}, dayFormat.format(Date.parse(busiest.key)), h('small', { text: `${fmtMinutes(busiest.minutes * 60)} min` }))
      : '–');
    tableBody.replaceChildren(...days.slice().reverse().map((d) => h('tr', {},
      cell('Day', longDayFormat.format(Date.parse(d.key))),
      h('td', { class: 'num primary', 'data-label': 'Participant minutes', text: fmtMinutes(d.minutes * 60) }),
      h('td', { class: 'num', 'data-label': 'Sessions', text: fmtNumber(d.sessions) }))));
    body.replaceChildren(stats, h('section', { class: 'card', 'aria-labelledby': 'h-chart' },
      h('div', { class: 'section-head' }, h('h2', { id: 'h-chart', text: 'Participant minutes per day' }),
        h('span', { class: 'hint', text: `${PROVIDER_NAMES[filters.provider] || 'All providers'}${filters.app ? ` · ${filters.app}` : ''}` })),
      chart,
      h('details', { class: 'as-table' }, h('summary', { text: 'Show as a table' }),
        h('table', { class: 'table' },
          h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: 'Day' }),
            h('th', { scope: 'col', class: 'num', text: 'Participant minutes' }),
            h('th', { scope: 'col', class: 'num', text: 'Sessions' }))),
          tableBody))));
    drawChart();
  }

  function drawChart() {
    if (!days.length) return;
    const width = Math.max(280, chart.clientWidth - 36 || 800);
    const height = width < 500 ? 200 : 260;
    const left = 48;
    const right = 8;
    const top = 12;
    const bottom = 26;
    const plotW = width - left - right;
    const plotH = height - top - bottom;
    const peak = Math.max(...days.map((d) => d.minutes));
    const max = niceCeiling(peak);
    const slot = plotW / days.length;
    const barW = Math.max(2, Math.min(36, slot * 0.7));
    const labelEvery = Math.ceil(days.length / Math.max(2, Math.floor(plotW / 64)));
    const total = days.reduce((s, d) => s + d.minutes, 0);
    const children = [];
    for (let i = 0; i <= 4; i += 1) {
      const value = (max / 4) * i;
      const y = top + plotH - (plotH * i) / 4;
      children.push(svg('line', { class: 'grid', x1: left, x2: width - right, y1: y, y2: y }));
      children.push(svg('text', { class: 'axis', x: left - 8, y: y + 4, 'text-anchor': 'end' },
        fmtNumber(Math.round(value * 10) / 10)));
    }
    days.forEach((d, i) => {
      const barH = max ? (d.minutes / max) * plotH : 0;
      const x = left + i * slot + (slot - barW) / 2;
      children.push(svg('rect', {
        class: 'bar', x, y: top + plotH - barH, width: barW, height: Math.max(barH, d.minutes > 0 ? 1 : 0), rx: 2,
      }, svg('title', {}, `${longDayFormat.format(Date.parse(d.key))}: ${fmtMinutes(d.minutes * 60)} participant minutes, ${fmtNumber(d.sessions)} sessions`)));
      // Values on the bars where they fit; otherwise the busiest day's alone.
      if (d.minutes > 0 && (slot >= 34 || d.minutes === peak)) {
        children.push(svg('text', {
          class: 'bar-label', x: left + i * slot + slot / 2, y: top + plotH - barH - 5, 'text-anchor': 'middle',
        }, fmtMinutes(d.minutes * 60)));
      }
      if ((days.length - 1 - i) % labelEvery === 0) {
        children.push(svg('text', { class: 'axis', x: left + i * slot + slot / 2, y: height - 8, 'text-anchor': 'middle' },
          dayFormat.format(Date.parse(d.key))));
      }
    });
    chart.replaceChildren(svg('svg', {
      class: 'usage-chart', viewBox: `0 0 ${width} ${height}`, width, height, role: 'img',
      'aria-label': `Bar chart of participant minutes per day over ${days.length} days, ${fmtMinutes(total * 60)} minutes in total.`,
    }, children));
  }

  load();
  return {
    resize: drawChart,
    destroy() {
      generation += 1;
      changedSoon.cancel();
    },
  };
}

const OUTCOMES = [
  'accepted', 'duplicate', 'challenge', 'bad_signature', 'stale', 'malformed', 'unsupported', 'unavailable',
];

function outcomeBadge(outcome) {
  const tone = {
    accepted: 'good', duplicate: '', challenge: '', unavailable: 'warn',
  }[outcome] ?? 'bad';
  return h('span', { class: `badge ${tone}`, text: String(outcome || '–').replace(/_/g, ' ') });
}

function eventsView(main, _args, params) {
  const filters = {
    provider: params.get('provider') || '', app: params.get('app') || '',
    room: params.get('room') || '', outcome: params.get('outcome') || '',
  };
  const pages = cursorPages();
  let generation = 0;
  const provider = providerSelect('events-provider', filters.provider);
  const app = h('input', { id: 'events-app', type: 'text', placeholder: 'Any app', autocomplete: 'off', value: filters.app });
  const room = h('input', {
    id: 'events-room', type: 'search', placeholder: 'Exact room name', autocomplete: 'off', value: filters.room,
  });
  const outcome = h('select', { id: 'events-outcome' },
    h('option', { value: '', text: 'All outcomes' }),
    OUTCOMES.map((o) => h('option', { value: o, selected: o === filters.outcome, text: o.replace(/_/g, ' ') })));
  const refreshButton = h('button', { class: 'button', type: 'button', text: 'Refresh', onclick: () => load() });
  const tbody = h('tbody');
  const table = h('table', { class: 'table', id: 'events-table' },
    h('thead', {}, h('tr', {}, ['Received', 'Provider', 'Event', 'Room', 'Outcome'].map((c) => h('th', { scope: 'col', text: c })))),
    tbody);
  const body = h('div');
  const eventsPager = pager(() => { pages.back(); load(); }, () => { pages.forward(); load(); });

  main.replaceChildren(
    viewHead('Webhook log', 'Recent webhook requests and what roomledger did with them, newest first.'),
    h('form', { class: 'filters', 'aria-label': 'Filter the webhook log', onsubmit: (e) => e.preventDefault() },
      field('Provider', provider), field('App', app), field('Room', room, true), field('Outcome', outcome),
      refreshButton),
    body);
  document.title = 'Webhook log · roomledger';

  const changed = () => {
    filters.provider = provider.value;
    filters.app = app.value.trim();
    filters.room = room.value.trim();
    filters.outcome = outcome.value;
    history.replaceState(null, '', `#/events${query(filters)}`);
    pages.restart();
    load();
  };
  const changedSoon = debounce(changed, 300);
  provider.addEventListener('change', changed);
  outcome.addEventListener('change', changed);
  room.addEventListener('input', changedSoon);
  app.addEventListener('input', changedSoon);

  async function load() {
    const mine = ++generation;
    try {
      const answer = await api('/api/v1/events', { ...filters, limit: 50, cursor: pages.cursor });
      if (mine !== generation) return;
      const list = answer.events || [];
      pages.next = answer.next_cursor || null;
      tbody.replaceChildren(...list.map((e) => {
        const at = e.received_at || e.at || e.time;
        const roomCell = e.room && e.provider && e.app
          ? h('a', { href: roomHref(e), class: 'name', text: e.room })
          : h('span', { text: e.room || '–' });
        return h('tr', {},
          h('td', { class: 'time', 'data-label': 'Received' }, when(at)),
          h('td', { class: 'nolabel', 'data-label': 'Provider' }, e.provider ? providerChip(e.provider) : '–',
            e.app ? h('div', { class: 'id', text: e.app }) : null),
          h('td', { class: 'nolabel', 'data-label': 'Event' }, h('span', { class: 'id', text: e.event || e.type || '–' })),
          cell('Room', roomCell),
          h('td', { class: 'primary', 'data-label': 'Outcome' }, outcomeBadge(e.outcome),
            e.status ? h('span', { class: 'id status', text: ` ${e.status}` }) : null));
      }));
      eventsPager.update(pages.page(), pages.earlier.length > 0, Boolean(pages.next));
      body.replaceChildren(h('div', { class: 'card' },
        list.length ? table : emptyState('No webhook requests match.', 'Requests appear here as providers deliver them.'),
        eventsPager.el));
    } catch (err) {
      if (mine !== generation || err.status === 401) return;
      if (err.status === 404) {
        body.replaceChildren(h('div', { class: 'card' }, h('div', { class: 'empty notice', 'data-state': 'unavailable' },
          h('strong', { text: 'The webhook log is not available on this server yet.' }),
          h('span', { text: 'This roomledger does not serve /api/v1/events. Webhooks are still received and counted in /metrics.' }))));
        return;
      }
      body.replaceChildren(errorBox(err, load));
    }
  }
  // The newest page follows new requests; a later page stays put while it is read.
  const followSoon = throttle(() => { if (pages.page() === 1) load(); }, 2000);

  load();
  return {
    room: followSoon,
    destroy() {
      generation += 1;
      changedSoon.cancel();
      followSoon.cancel();
    },
  };
}

// ----- routing ---------------------------------------------------------------------------

const ROUTES = [
  { pattern: /^\/rooms$/, nav: 'rooms', view: roomsView, title: 'Live rooms' },
  { pattern: /^\/room\/([^/]+)\/([^/]+)\/([^/]+)$/, nav: 'rooms', view: roomView },
  { pattern: /^\/participant$/, nav: 'participant', view: participantLookup },
  { pattern: /^\/participant\/([^/]+)\/([^/]+)\/([^/]+)$/, nav: 'participant', view: participantView },
  { pattern: /^\/usage$/, nav: 'usage', view: usageView },
  { pattern: /^\/events$/, nav: 'events', view: eventsView },
];

const router = {
  current: null,
  running: false,

  start(focus) {
    this.running = true;
    this.route(focus);
  },

  stop() {
    this.running = false;
    if (this.current && this.current.destroy) this.current.destroy();
    this.current = null;
  },

  route(focus) {
    if (!this.running) return;
    const raw = location.hash.replace(/^#/, '');
    if (!raw.startsWith('/')) {
      if (!this.current) history.replaceState(null, '', '#/rooms');
      else return;
    }
    const [path, search] = (location.hash.replace(/^#/, '') || '/rooms').split('?');
    const params = new URLSearchParams(search || '');
    let match = null;
    let route = ROUTES.find((r) => (match = r.pattern.exec(path)));
    if (!route) {
      history.replaceState(null, '', '#/rooms');
      route = ROUTES[0];
      match = ['/rooms'];
    }
    let args;
    try {
      args = match.slice(1).map(decodeURIComponent);
    } catch (_) {
      args = match.slice(1);
    }
    if (this.current && this.current.destroy) this.current.destroy();
    const main = document.getElementById('main');
    header.setNav(route.nav);
    if (route.title) document.title = `${route.title} · roomledger`;
    this.current = route.view(main, args, params) || {};
    if (focus) {
      const heading = main.querySelector('h1');
      if (heading) heading.focus({ preventScroll: false });
    }
  },

  dispatch(hook, payload) {
    const view = this.current;
    if (view && typeof view[hook] === 'function') view[hook](payload);
  },
};

// ----- start -----------------------------------------------------------------------------

async function start() {
  document.getElementById('skip-link').addEventListener('click', (event) => {
    event.preventDefault();
    const heading = document.querySelector('main h1');
    (heading || document.getElementById('main')).focus();
  });
  window.addEventListener('hashchange', () => router.route(true));
  window.addEventListener('resize', debounce(() => router.dispatch('resize'), 150));
  setInterval(() => router.dispatch('tick'), 1000);
  try {
    await api('/api/v1/rooms', { limit: 1 });
  } catch (err) {
    // A 401 has shown the sign-in form; any other failure shows in the view itself.
    if (err.status === 401) return;
  }
  live.connect();
  router.start(false);
}

start();

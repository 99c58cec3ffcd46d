// microfactory dashboard script: buttons and forms that call the API, live updates from the
// server-sent-event stream, and Gantt zoom. The pages work without it for reading; it only adds
// actions and liveness. No libraries, no build step.
'use strict';

const text = JSON.parse(document.getElementById('i18n')?.textContent || '{}');
const CSRF = { 'X-Microfactory-Csrf': '1' };

// Shows `message` in the page's flash box; `link` ({href, text}) follows it, as the way on.
function flash(message, bad, link) {
  const box = document.getElementById('flash');
  if (!box) return;
  box.textContent = message;
  if (link) {
    const a = document.createElement('a');
    a.href = link.href;
    a.textContent = link.text;
    a.dataset.testid = 'flash-link';
    box.append(' ', a);
  }
  box.classList.toggle('bad', Boolean(bad));
  clearTimeout(flash.timer);
  if (!bad) flash.timer = setTimeout(() => { box.textContent = ''; }, 4000);
}

// Calls the API with the session cookie and the CSRF header; resolves to the JSON answer (or
// null for 204), rejects with a message built from the problem details.
async function api(method, url, body, ifMatch) {
  const init = { method, headers: { ...CSRF }, credentials: 'same-origin' };
  // The version of the record the page showed: the server refuses the change (412) if it
  // changed since.
  if (ifMatch) init.headers['If-Match'] = ifMatch;
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch {
    // The request never reached the platform (the tablet lost its network): say so, in the
    // page's language, rather than the browser's "Failed to fetch".
    throw new Error(text.unsent || 'Not sent: there is no connection to the platform, so nothing was saved.');
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    let message = (data && (data.detail || data.title)) || response.statusText;
    if (response.status === 412 && text.changed_since) message = text.changed_since;
    if (data && Array.isArray(data.errors) && data.errors.length) {
      // The detail often is the field errors already; say them once.
      const fields = data.errors.map(e => `${e.field}: ${e.message}`).join('; ');
      if (!data.errors.every(e => message.includes(e.message))) message += ' — ' + fields;
    }
    const error = new Error((text.failed || 'Not done ({status}): {message}').replace('{status}', response.status).replace('{message}', message));
    error.status = response.status;
    // A number in use: the record that has it.
    if (data && Number.isInteger(data.existing_id)) error.existingId = data.existing_id;
    throw error;
  }
  return data;
}

// A form's fields as JSON: `a.b` names nest and a number in a name is a place in a list
// (`shifts.0.name`), `data-type` converts, empty fields are left out (or sent as null with
// `data-empty="null"`, to clear what the field sets). Lists: a `data-type="list"` field's words
// (split at commas and white space); the values of the ticked `data-type="set"` boxes of one
// name (`int-set`: as integers). A list's row left wholly blank is no row. A number field's
// `data-scale` multiplies what is typed, to a whole number (minutes typed, seconds sent: 60). A `data-type="zone"` field is the site's
// `time_zone`, or its `utc_offset` when it holds one (`+08:00`).
function formJson(form) {
  const out = {};
  for (const field of form.elements) {
    if (!field.name || field.disabled) continue;
    const type = field.dataset.type;
    let name = field.name;
    let value;
    if (type === 'set' || type === 'int-set') {
      const [node, key] = slot(out, name);
      node[key] ??= [];
      if (field.checked) node[key].push(type === 'int-set' ? parseInt(field.value, 10) : field.value);
      continue;
    }
    if (type === 'list') value = field.value.split(/[\s,]+/).filter(Boolean);
    else if (field.type === 'checkbox') value = field.checked;
    else if (field.value === '' && field.dataset.empty !== 'null') continue;
    else value = field.value;
    if (value === '') value = null;
    else switch (type) {
      case 'number': {
        const scale = Number(field.dataset.scale);
        value = scale ? Math.round(Number(value) * scale) : Number(value);
        break;
      }
      case 'int': value = parseInt(value, 10); break;
      case 'bool': value = value === true || value === 'true'; break;
      case 'datetime': value = new Date(value).toISOString(); break;
      case 'site-datetime': value = siteTime(value); break;
      case 'zone':
        value = value.trim();
        if (/^[+-]\d\d:\d\d$/.test(value)) name = 'utc_offset';
        break;
    }
    const [node, key] = slot(out, name);
    node[key] = value;
  }
  return withoutBlankRows(out);
}

// Where the field `name` goes in `out`: the object (or list) that holds it, and its key there.
function slot(out, name) {
  const path = name.split('.');
  let node = out;
  path.slice(0, -1).forEach((key, i) => { node = node[key] ??= /^\d+$/.test(path[i + 1]) ? [] : {}; });
  return [node, path[path.length - 1]];
}

function blank(value) {
  if (value === null || value === undefined || value === '') return true;
  if (Array.isArray(value)) return value.every(blank);
  return typeof value === 'object' && Object.values(value).every(blank);
}

function withoutBlankRows(value) {
  if (Array.isArray(value)) {
    return value.filter(item => item !== undefined && !(item && typeof item === 'object' && blank(item))).map(withoutBlankRows);
  }
  if (value && typeof value === 'object') {
    for (const key of Object.keys(value)) value[key] = withoutBlankRows(value[key]);
  }
  return value;
}

// Minutes east of UTC that the site's clocks show at the instant `ms`: from its time zone's
// rules when it has one (summer time), else the fixed offset the page was drawn with.
let zoneFormat;
function siteOffset(ms) {
  const fixed = Number(document.body.dataset.offsetMinutes) || 0;
  const zone = document.body.dataset.timeZone;
  if (!zone) return fixed;
  try {
    zoneFormat ??= new Intl.DateTimeFormat('en-US', {
      timeZone: zone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric',
      hour: 'numeric', minute: 'numeric', second: 'numeric',
    });
    const part = Object.fromEntries(zoneFormat.formatToParts(new Date(ms)).map(p => [p.type, Number(p.value)]));
    const wall = Date.UTC(part.year, part.month - 1, part.day, part.hour, part.minute, part.second);
    return Math.round((wall - Math.floor(ms / 1000) * 1000) / 60000);
  } catch {
    return fixed;
  }
}

// A datetime-local value ("2026-12-01T18:00") in the site's time zone, as RFC 3339.
function siteTime(local) {
  const seconds = local.length === 16 ? local + ':00' : local;
  const wall = Date.parse(seconds + 'Z');
  // The offset at about that time, then at the instant it gives (right across a change).
  const offset = siteOffset(wall - siteOffset(wall) * 60000);
  const abs = Math.abs(offset);
  const pad = n => String(n).padStart(2, '0');
  return `${seconds}${offset < 0 ? '-' : '+'}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

// Where the keyboard focus is within `root`, as something to find again in a new copy of it: the
// element's id, else what it does or links to, else its place among the focusable elements.
const FOCUSABLE = 'a[href], button, input, select, textarea, summary, [tabindex]';
function focusKey(root) {
  const active = document.activeElement;
  if (!active || active === document.body || !root.contains(active)) return null;
  let selector = null;
  for (const name of ['id', 'data-action', 'href', 'name', 'data-testid']) {
    const value = active.getAttribute(name);
    if (value) { selector = `${active.tagName.toLowerCase()}[${name}="${CSS.escape(value)}"]`; break; }
  }
  const field = active.matches('input, select, textarea');
  return { selector, index: [...root.querySelectorAll(FOCUSABLE)].indexOf(active), field };
}

// Puts the focus back where `key` says, in `root` or its new copy; when that element is gone, on
// the one now in its place, else on the section itself, so the next Tab goes on from there and
// not from the top of the page.
function restoreFocus(root, key) {
  if (!key || !root) return;
  const same = key.selector ? [...root.querySelectorAll(key.selector)] : [];
  const all = [...root.querySelectorAll(FOCUSABLE)].filter(el => !el.disabled);
  let target = same.length === 1 ? same[0] : all[Math.min(key.index, all.length - 1)];
  // A button that is gone (a lot's Start, now running) hands the focus on, but not into a field
  // the person never was in: a focused field holds its section still (no live updates while one
  // may be typing), so a count coming in meanwhile would not show.
  if (same.length !== 1 && !key.field && target && target.matches('input, select, textarea')) {
    target = all.slice(all.indexOf(target)).find(el => !el.matches('input, select, textarea')) || target;
  }
  // Inside a closed <details> nothing takes the focus: its summary does.
  const closed = target && target.closest('details:not([open])');
  if (closed && target.tagName !== 'SUMMARY') target = closed.querySelector('summary') || closed;
  if (!target) {
    if (root === document.body) return;
    target = root;
    if (!root.hasAttribute('tabindex')) root.setAttribute('tabindex', '-1');
  }
  target.focus({ preventScroll: true });
}

// Whether a change form (one drawn with data-original) would send every field as the record
// has it: times compared as instants, a field left empty as none.
function unchanged(element, body) {
  if (element.dataset.original === undefined || !body) return false;
  const original = JSON.parse(element.dataset.original);
  const keys = new Set([...Object.keys(original), ...Object.keys(body)]);
  keys.delete('status');
  const time = value => typeof value === 'string' && /^\d{4}-\d\d-\d\dT/.test(value) ? Date.parse(value) : value;
  return [...keys].every(key => (blank(original[key]) && blank(body[key]))
    || canonical(time(original[key] ?? null)) === canonical(time(body[key] ?? null)));
}

// JSON with every object's keys sorted, so that two records compare by what they hold (the page
// may draw a record's fields in another order than the form sends them).
function canonical(value) {
  return JSON.stringify(value, (key, item) => item && typeof item === 'object' && !Array.isArray(item)
    ? Object.fromEntries(Object.keys(item).sort().map(name => [name, item[name]]))
    : item);
}

async function perform(element, body) {
  const [method, url] = element.dataset.action.split(' ');
  if (element.dataset.confirm && !window.confirm(element.dataset.confirm)) return;
  if (unchanged(element, body)) {
    flash(text.unchanged || 'Nothing to save: every field is as it was.');
    return;
  }
  // A finish that leaves units of the lot uncounted says how many and asks first.
  if (element.dataset.shortOf !== undefined && body) {
    const short = Number(element.dataset.shortOf) - (Number(body.good) || 0) - (Number(body.scrap) || 0);
    if (short > 0 && !window.confirm(element.dataset.confirmShort.replace('{n}', short))) return;
  }
  // A due time already past (on the factory's clock when the page was drawn) asks first: most
  // often a typo in the date.
  if (element.dataset.pastDue !== undefined && body && body.due
    && Date.parse(body.due) < Number(element.dataset.pastDue) && !window.confirm(element.dataset.confirmPast)) return;
  // Material that arrives after the due time makes the order late for certain.
  if (element.dataset.confirmMaterial && body && body.due && body.material_ready
    && Date.parse(body.material_ready) > Date.parse(body.due) && !window.confirm(element.dataset.confirmMaterial)) return;
  // Where the focus is now: disabling the control below takes it away. A form counts from its
  // first control: when the form is gone after the reload, what takes its place is there.
  const focused = focusKey(document.body);
  if (focused && element.tagName === 'FORM') {
    const first = element.querySelector(FOCUSABLE);
    const index = first ? [...document.body.querySelectorAll(FOCUSABLE)].indexOf(first) : -1;
    if (index >= 0) focused.index = Math.min(focused.index, index);
  }
  const remember = () => sessionStorage.setItem('mf-focus', JSON.stringify({ key: focused, action: element.dataset.action }));
  const controls = element.tagName === 'FORM' ? element.querySelectorAll('button') : [element];
  controls.forEach(c => { c.disabled = true; });
  try {
    let answer;
    try {
      answer = await api(method, url, body, element.dataset.ifMatch);
    } catch (error) {
      if (error.status !== 412 || element.dataset.original === undefined) throw error;
      answer = await againIfUnchanged(element, method, url, body);
      if (answer === undefined) throw error;
    }
    const then = element.dataset.then || 'reload';
    if (then === 'token' && answer && answer.token) {
      showSecret(answer.token, remember);
    } else if (then.startsWith('goto:')) {
      window.location.assign(then.slice(5).replace('{id}', answer && answer.id));
    } else if (then === 'none') {
      flash(element.dataset.done || text.done || 'Done.');
    } else {
      sessionStorage.setItem('mf-flash', element.dataset.done || text.done || 'Done.');
      // The reloaded page puts the focus back on what was used, or near it.
      remember();
      window.location.reload();
    }
  } catch (error) {
    if (error.status === 409 && element.dataset.reloadOnConflict !== undefined) {
      // What the form was drawn from changed (a lot counted meanwhile): the page is drawn again
      // from what is now, with the refusal shown, rather than kept with its stale numbers.
      sessionStorage.setItem('mf-flash-bad', error.message);
      window.location.reload();
      return;
    }
    // A form that names where the record in the way is shown links it (an order number in use).
    const existing = error.existingId !== undefined && element.dataset.existing;
    flash(error.message, true, existing ? { href: existing.replace('{id}', error.existingId), text: element.dataset.existingLabel } : undefined);
  } finally {
    // A control that had the focus loses it while disabled: give it back.
    const lost = document.activeElement === document.body || !document.activeElement;
    controls.forEach(c => { c.disabled = false; });
    if (lost && element.isConnected) (element.tagName === 'FORM' ? element.querySelector('button') || element : element).focus();
  }
}

// A record that changes by itself (a running order's counts) has a new version with every unit
// counted, so a refusal for that alone (412) is no conflict. When the fields the form was drawn
// from (data-original) are still what the record has, the change goes again on the new version;
// otherwise (someone changed them) the answer is undefined and the refusal stands.
async function againIfUnchanged(element, method, url, body) {
  const original = JSON.parse(element.dataset.original);
  const response = await fetch(url, { credentials: 'same-origin' }).catch(() => null);
  const tag = response && response.ok && response.headers.get('ETag');
  if (!tag) return undefined;
  const now = await response.json().catch(() => null);
  const same = key => JSON.stringify(now[key] ?? null) === JSON.stringify(original[key] ?? null);
  if (!now || !Object.keys(original).every(same)) return undefined;
  return api(method, url, body, tag);
}

function showSecret(secret, remember) {
  const dialog = document.createElement('dialog');
  const note = document.createElement('p');
  note.id = 'secret-note';
  note.textContent = text.token_once || '';
  dialog.setAttribute('aria-labelledby', note.id);
  const code = document.createElement('code');
  code.className = 'secret';
  code.textContent = secret;
  const close = document.createElement('button');
  close.textContent = text.close || 'Close';
  close.className = 'primary';
  close.addEventListener('click', () => dialog.close());
  // Closed by the button or by Escape: the page shows the new token in its list.
  dialog.addEventListener('close', () => { remember(); window.location.reload(); });
  dialog.append(note, code, close);
  document.body.append(dialog);
  dialog.showModal();
}

document.addEventListener('submit', event => {
  const form = event.target.closest('form[data-action]');
  if (!form) return;
  event.preventDefault();
  perform(form, formJson(form));
});

// A delivery quote for the form's order (`data-quote`: the API to ask), shown below it.
document.addEventListener('click', async event => {
  const button = event.target.closest('button[data-quote]');
  if (!button) return;
  event.preventDefault();
  const form = button.closest('form');
  const result = form.parentElement.querySelector('[data-quote-result]');
  button.disabled = true;
  try {
    const quote = await api('POST', button.dataset.quote, formJson(form));
    // The site's wall-clock time, as the form's fields take it.
    const wall = ms => new Date(ms + siteOffset(ms) * 60000).toISOString().slice(0, 16).replace('T', ' ');
    let message = (quote.late ? button.dataset.quoteLate : button.dataset.quoteOnTime)
      .replace('{eta}', wall(Date.parse(quote.eta))).replace('{hours}', (quote.late_seconds / 3600).toFixed(1));
    const more = (quote.other_late_orders_after ?? 0) - (quote.other_late_orders_before ?? 0);
    if (more > 0) message += ' ' + button.dataset.quoteOthers.replace('{n}', more);
    result.textContent = message;
    result.classList.toggle('late-text', quote.late);
  } catch (error) {
    result.textContent = error.message;
    result.classList.add('late-text');
  } finally {
    button.disabled = false;
  }
});

document.addEventListener('click', event => {
  const button = event.target.closest('button[data-action]');
  if (!button || button.closest('form[data-action]')) return;
  event.preventDefault();
  perform(button, button.dataset.body ? JSON.parse(button.dataset.body) : undefined);
});

// Live updates: machine tiles and badges change in place; sections marked with
// data-refresh-on="alarm production …" are fetched again (at most every 2 s), and those that also
// carry data-refresh-machine only for events of that machine (see also startTicks).
const pending = new Set();
let refreshTimer = null;
// One page fetch at a time: a slow server must not get a pile of them, and an older answer must
// not replace a newer one. What comes up meanwhile waits in `pending` for the next.
let refreshing = false;

function scheduleRefresh(kind, machineId) {
  document.querySelectorAll('[data-refresh-on]').forEach(el => {
    if (!el.id || !el.dataset.refreshOn.split(' ').includes(kind)) return;
    const only = el.dataset.refreshMachine;
    if (only && machineId !== undefined && only !== String(machineId)) return;
    pending.add(el.id);
  });
  if (pending.size && !refreshTimer) refreshTimer = setTimeout(refresh, 2000);
}

function beingEdited(section) {
  return [...section.querySelectorAll('input, select, textarea')].some(field => {
    if (field === document.activeElement) return true;
    if (field.type === 'checkbox' || field.type === 'radio') return field.checked !== field.defaultChecked;
    if (field.tagName === 'SELECT') return [...field.options].some(o => o.selected !== o.defaultSelected);
    return field.value !== field.defaultValue;
  });
}

// After a failed fetch the next waits longer, up to a minute; a success brings it back to 2 s.
let retryDelay = 2000;

async function refresh() {
  refreshTimer = null;
  if (refreshing) return;
  const ids = [...pending];
  pending.clear();
  refreshing = true;
  let outcome = 'failed';
  try {
    outcome = await refreshSections(ids);
  } catch {
    // Counted as failed.
  } finally {
    refreshing = false;
    // Not fetched (the server away or slow): the sections wait for the next try. A page that is
    // gone or no longer ours (4xx) is not asked for again.
    if (outcome === 'failed') ids.forEach(id => pending.add(id));
    retryDelay = outcome === 'failed' ? Math.min(retryDelay * 2, 60000) : 2000;
    if (pending.size && !refreshTimer) refreshTimer = setTimeout(refresh, retryDelay);
  }
}

// 'done', 'gone' (4xx) or 'failed'; a fetch that hangs is given up after 20 s.
async function refreshSections(ids) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 20000);
  const response = await fetch(window.location.href, { credentials: 'same-origin', signal: controller.signal })
    .catch(() => null);
  const text = response && response.ok ? await response.text().catch(() => null) : null;
  clearTimeout(timer);
  if (response && response.status >= 400 && response.status < 500) return 'gone';
  if (text === null) return 'failed';
  // The session ended: the page came back as the sign-in page. Show it rather than go stale.
  if (response.redirected && new URL(response.url).pathname === '/login') {
    window.location.reload();
    return 'gone';
  }
  const fresh = new DOMParser().parseFromString(text, 'text/html');
  for (const id of ids) {
    const now = document.getElementById(id);
    const next = fresh.getElementById(id);
    if (!now || !next) continue;
    // Someone is entering something in it (a field has the focus or differs from what the page
    // gave it): leave it as it is rather than lose the entry; the next event after it is sent
    // or cleared refreshes it.
    if (beingEdited(now)) continue;
    const key = focusKey(now);
    const copy = document.importNode(next, true);
    const before = new Set([...now.querySelectorAll('[data-alarm]')].map(row => row.dataset.alarm));
    now.replaceWith(copy);
    restoreFocus(copy, key);
    // New alarms in a section that says them: read out once, as the section itself is replaced.
    if (copy.hasAttribute('data-announce')) {
      const fresh = [...copy.querySelectorAll('[data-alarm]')].filter(row => !before.has(row.dataset.alarm));
      if (fresh.length && !copy.hidden) announce(fresh.map(spoken).join('. '));
    }
  }
  return 'done';
}

// A table row as a sentence: its cells' words, cells apart, buttons left out.
function spoken(row) {
  const words = cell => {
    const parts = [];
    const walk = node => {
      if (node.nodeType === Node.TEXT_NODE) {
        const text = node.textContent.trim();
        if (text) parts.push(text);
      } else if (node.nodeType === Node.ELEMENT_NODE && node.tagName !== 'BUTTON') {
        node.childNodes.forEach(walk);
      }
    };
    walk(cell);
    return parts.join(' ');
  };
  return [...row.cells].map(words).filter(Boolean).join(', ');
}

function announce(message) {
  const box = document.getElementById('announce');
  if (!box) return;
  box.textContent = '';
  // A change after an empty one is read even when the words are the same as last time.
  setTimeout(() => { box.textContent = message; }, 50);
}

// Sections that show a window ending now (the machine page's charts) are fetched again as time
// passes: every data-refresh-every milliseconds of the page's clock (the demo's runs faster), at
// most every 5 s of real time, and only while the page is in view.
function startTicks() {
  const speed = clockSpeed(document.querySelector('[data-now][data-speed]'));
  const byPeriod = new Map();
  document.querySelectorAll('[data-refresh-every]').forEach(el => {
    const every = Math.max(5000, Number(el.dataset.refreshEvery) / speed);
    if (!el.id || !Number.isFinite(every)) return;
    byPeriod.set(every, [...(byPeriod.get(every) || []), el.id]);
  });
  byPeriod.forEach((ids, every) => setInterval(() => {
    if (document.hidden) return;
    ids.forEach(id => pending.add(id));
    if (!refreshTimer) refreshTimer = setTimeout(refresh, 0);
  }, every));
}

function applyState(event) {
  const states = text.states || {};
  document.querySelectorAll(`[data-machine-id="${event.machine_id}"]`).forEach(el => {
    for (const state of Object.keys(states)) el.classList.remove('state-' + state.replace('_', '-'));
    el.classList.add('state-' + event.state.replace('_', '-'));
    el.dataset.state = event.state;
    el.querySelectorAll('[data-state-label]').forEach(label => {
      label.textContent = states[event.state] || event.state;
      // A badge coloured by its own state class (the station's) takes the new one too.
      if ([...label.classList].some(name => name.startsWith('state-'))) {
        for (const state of Object.keys(states)) label.classList.remove('state-' + state.replace('_', '-'));
        label.classList.add('state-' + event.state.replace('_', '-'));
      }
    });
    el.querySelectorAll('[data-since]').forEach(since => {
      // Shown in the site's time zone, as the server renders times, not the browser's.
      const instant = Date.parse(event.since);
      const at = new Date(instant + siteOffset(instant) * 60000);
      since.textContent = at.toISOString().slice(11, 16);
    });
    el.classList.remove('changed');
    void el.offsetWidth;
    el.classList.add('changed');
  });
}

function startLive() {
  const dot = document.querySelector('.live-dot');
  // A page without live parts has no stream: a grey dot there would read as a lost connection.
  if (!document.querySelector('[data-live]')) {
    if (dot) dot.style.visibility = 'hidden';
    return;
  }
  const source = new EventSource('/api/v1/stream');
  source.addEventListener('open', () => dot && dot.classList.add('on'));
  source.addEventListener('error', () => dot && dot.classList.remove('on'));
  source.addEventListener('machine_state', message => {
    const event = JSON.parse(message.data);
    applyState(event);
    scheduleRefresh('machine_state', event.machine_id);
  });
  source.addEventListener('production', message => scheduleRefresh('production', JSON.parse(message.data).machine_id));
  source.addEventListener('alarm', () => scheduleRefresh('alarm'));
  // Back after a dropped connection, the browser names the last event it had and the server
  // sends what came since. When it cannot (too much came, or the server was restarted), it says
  // so, and every live part of the page is read again.
  source.addEventListener('lagged', () => {
    for (const kind of ['machine_state', 'production', 'alarm', 'plan']) scheduleRefresh(kind);
  });
  source.addEventListener('plan', message => {
    const event = JSON.parse(message.data);
    // A page showing another plan says a newer one is active; lists that follow the plan refresh.
    document.querySelectorAll('[data-plan-news]').forEach(el => {
      if (el.dataset.planNews !== String(event.plan_id)) el.hidden = false;
    });
    scheduleRefresh('plan');
  });
  window.addEventListener('beforeunload', () => source.close());
}

// Gantt zoom: elements carry data-x0/data-x1 in minutes from the chart's origin; the chart's
// data-px is pixels per minute at zoom 1, data-left the width of the lane labels and data-right the
// margin after the last minute. "Fit" sizes the chart to the box it scrolls in (a portrait tablet is
// narrower than the server's guess).
function zoomGantt(svg, factor) {
  const left = Number(svg.dataset.left);
  const right = Number(svg.dataset.right);
  const span = Number(svg.dataset.span);
  const base = Number(svg.dataset.px);
  let zoom;
  if (factor === 'fit') {
    const room = (svg.parentElement ? svg.parentElement.clientWidth : 0) - left - right;
    zoom = room > 0 && span > 0 && base > 0 ? room / (span * base) : 1;
  } else {
    zoom = Math.min(64, Math.max(0.25, (Number(svg.dataset.zoom) || 1) * factor));
  }
  svg.dataset.zoom = zoom;
  const px = base * zoom;
  svg.setAttribute('width', Math.ceil(left + span * px + right));
  for (const el of svg.querySelectorAll('[data-x0]')) {
    const x0 = left + Number(el.dataset.x0) * px;
    if (el.tagName === 'line') {
      el.setAttribute('x1', x0);
      el.setAttribute('x2', x0);
    } else if (el.tagName === 'text') {
      el.setAttribute('x', x0 + 3);
      if (el.dataset.x1) el.style.display = (Number(el.dataset.x1) - Number(el.dataset.x0)) * px > 7 * el.textContent.length ? '' : 'none';
    } else {
      el.setAttribute('x', x0);
      if (el.dataset.x1) el.setAttribute('width', Math.max(1, (Number(el.dataset.x1) - Number(el.dataset.x0)) * px));
    }
  }
}

document.addEventListener('click', event => {
  const button = event.target.closest('[data-zoom]');
  if (!button) return;
  const svg = document.getElementById(button.dataset.target);
  if (!svg) return;
  const how = button.dataset.zoom;
  zoomGantt(svg, how === 'in' ? 2 : how === 'out' ? 0.5 : 'fit');
});

// Form parts that apply to some choices only: `data-show-when="field=a,b"` shows the part (and
// enables its inputs, so they are sent) only while the form's `field` has one of those values.
function applyShowWhen(form) {
  for (const part of form.querySelectorAll('[data-show-when]')) {
    const [name, values] = part.dataset.showWhen.split('=');
    const field = form.elements[name];
    const on = Boolean(field) && values.split(',').includes(field.value);
    part.hidden = !on;
    part.querySelectorAll('input, select, textarea').forEach(input => { input.disabled = !on; });
  }
}

document.addEventListener('change', event => {
  if (event.target.matches('select[data-switch]')) applyShowWhen(event.target.form);
});

// A station tablet stands at one machine: the chooser puts the machine this browser last opened
// first, marked, so the operator does not hunt for it after every sign-in.
function rememberStation() {
  const open = document.querySelector('.station h1[data-machine-id]');
  if (open) localStorage.setItem('mf-station', open.dataset.machineId);
  const chooser = document.querySelector('.station .machines');
  const last = localStorage.getItem('mf-station');
  const tile = chooser && last && chooser.querySelector(`a[data-machine-id="${CSS.escape(last)}"]`);
  if (tile) {
    chooser.prepend(tile);
    tile.classList.add('last-used');
    tile.dataset.testid = 'last-used';
  }
}

// How many seconds the page's clock runs per real second: the demo's factory clock (the header
// element carrying data-speed), else 1.
function clockSpeed(holder) {
  return holder ? Number(holder.dataset.speed) || 1 : 1;
}

// Time runs on in the page: the demo's factory clock in the header (at its speed, in the site's
// time zone) and the Gantt's "now" line, which a page left open would otherwise leave behind.
function runClocks() {
  const clock = document.querySelector('[data-sim-clock-time]');
  const holder = clock && clock.closest('[data-now]');
  const speed = clockSpeed(holder);
  const lines = [...document.querySelectorAll('svg[data-gantt] .now[data-x0]')];
  if (!holder && !lines.length) return;
  const start = holder ? Date.parse(holder.dataset.now) : 0;
  const loaded = Date.now();
  const firstX0 = lines.map(el => Number(el.dataset.x0));
  const tick = () => {
    const elapsed = (Date.now() - loaded) * speed;
    // Local time of day on the page's clock: the factory's in the demo, else the browser's.
    const instant = holder ? start + elapsed : Date.now();
    const local = new Date(instant + siteOffset(instant) * 60000).toISOString();
    if (holder) clock.textContent = local.slice(0, 16).replace('T', ' ');
    lines.forEach((el, i) => {
      const svg = el.closest('svg');
      const x0 = firstX0[i] + elapsed / 60000;
      // Past the chart's end the plan has nothing more to show against now.
      el.style.display = x0 > Number(svg.dataset.span) ? 'none' : '';
      el.dataset.x0 = x0;
      const x = Number(svg.dataset.left) + x0 * Number(svg.dataset.px) * (Number(svg.dataset.zoom) || 1);
      if (el.tagName === 'line') { el.setAttribute('x1', x); el.setAttribute('x2', x); }
      else {
        el.setAttribute('x', x + 3);
        el.textContent = el.textContent.replace(/\d\d:\d\d$/, local.slice(11, 16));
      }
    });
  };
  setInterval(tick, Math.max(250, Math.min(1000, 60000 / speed)));
}

document.addEventListener('DOMContentLoaded', () => {
  runClocks();
  startTicks();
  document.querySelectorAll('form').forEach(form => {
    if (form.querySelector('[data-show-when]')) applyShowWhen(form);
  });
  const message = sessionStorage.getItem('mf-flash');
  if (message) { sessionStorage.removeItem('mf-flash'); flash(message); }
  const refused = sessionStorage.getItem('mf-flash-bad');
  if (refused) { sessionStorage.removeItem('mf-flash-bad'); flash(refused, true); }
  const focus = sessionStorage.getItem('mf-focus');
  if (focus) {
    sessionStorage.removeItem('mf-focus');
    try {
      const { key, action } = JSON.parse(focus);
      const used = action && [...document.querySelectorAll('[data-action]')].find(el => el.dataset.action === action);
      const control = used && used.tagName === 'FORM' ? used.querySelector('button') : used;
      if (control && !control.closest('details:not([open])')) control.focus();
      else if (key) restoreFocus(document.body, key);
      else if (control) restoreFocus(document.body, { selector: null, index: [...document.querySelectorAll(FOCUSABLE)].indexOf(control) });
    } catch {
      // A stale or garbled entry: the page keeps its usual focus.
    }
  }
  rememberStation();
  startLive();
  document.querySelectorAll('svg[data-gantt]').forEach(svg => {
    if (svg.parentElement && svg.parentElement.clientWidth < Number(svg.getAttribute('width'))) zoomGantt(svg, 'fit');
    svg.addEventListener('wheel', event => {
      if (!event.ctrlKey) return;
      event.preventDefault();
      zoomGantt(svg, event.deltaY < 0 ? 1.25 : 0.8);
    }, { passive: false });
  });
});

// Browser test of the dashboard: headless Debian chromium driven by playwright-core against a
// running `microfactory demo` (started by crates/cli/tests/browser.rs, which passes
// MF_BASE_URL, MF_TOKEN — an admin API token — and MF_ARTIFACTS, where screenshots go).
//
// It signs in, watches a machine tile change live, opens a machine chart and the Gantt,
// acknowledges an alarm, starts and finishes an operation as an operator, switches language,
// and screenshots every page. Exits non-zero on the first failed check.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { chromium } from 'playwright-core';

const base = process.env.MF_BASE_URL;
const token = process.env.MF_TOKEN;
const artifacts = process.env.MF_ARTIFACTS || 'test-artifacts/dashboard';
if (!base || !token) throw new Error('set MF_BASE_URL and MF_TOKEN');
mkdirSync(artifacts, { recursive: true });

function check(condition, message) {
  if (!condition) throw new Error('check failed: ' + message);
  console.log('ok -', message);
}

async function api(method, path, body) {
  const response = await fetch(base + path, {
    method,
    headers: { Authorization: 'Bearer ' + token, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

async function until(what, probe, seconds = 20) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error('timed out waiting for ' + what);
    await new Promise(resolve => setTimeout(resolve, 250));
  }
}

// Users of each role with known passwords (the admin's own password is random and printed once).
const password = 'pw-' + randomBytes(12).toString('hex');
for (const role of ['planner', 'operator', 'viewer', 'admin']) {
  await api('POST', '/api/v1/users', { username: 'browser-' + role, role, password });
}

// Computes and publishes a plan. The demo's automatic repairs (breakdowns, arriving rush orders)
// may publish one in between, which makes ours stale (409): then plan again.
async function publishPlan() {
  for (let attempt = 1; ; attempt++) {
    const draft = await api('POST', '/api/v1/plans', { time_limit_seconds: 0 });
    try {
      return await api('POST', `/api/v1/plans/${draft.id}/publish`);
    } catch (error) {
      if (attempt >= 5 || !String(error.message).includes(': 409 ')) throw error;
    }
  }
}

// A published plan, so the Gantt, the dispatch lists and the ETAs have something to show.
await publishPlan();

// An alarm that fires on the first reading of a metric of the first machine with metrics.
const machines = (await api('GET', '/api/v1/machines?limit=100')).items;
const withMetric = await until('a machine reporting metrics', async () => {
  for (const m of machines) {
    const { metrics } = await api('GET', `/api/v1/machines/${m.id}/metrics`);
    if (metrics.length) return { machine: m, metric: metrics[0] };
  }
  return null;
}, 60);
const rule = await api('POST', '/api/v1/alarm-rules', {
  name: 'browser test', machine_id: withMetric.machine.id, metric: withMetric.metric,
  condition: { kind: 'above', threshold: -1e12 }, severity: 'warning',
});

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
const shot = (page, name) => page.screenshot({ path: join(artifacts, name + '.png'), fullPage: true });

async function signIn(context, username, secret) {
  const page = await context.newPage();
  await page.goto(base + '/');
  check(page.url().includes('/login'), `${username}: a visitor without a session is sent to sign in`);
  await page.fill('input[name=username]', username);
  await page.fill('input[name=password]', secret);
  await page.click('button[type=submit]');
  await page.waitForURL(url => !url.pathname.startsWith('/login'));
  return page;
}

try {
  // --- Planner: overview, live tiles, machine chart, Gantt, alarm, orders. -------------------
  const desk = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'en-GB' });
  const page = await signIn(desk, 'browser-planner', password);
  await page.waitForSelector('[data-testid=machine-tile]');
  check((await page.locator('[data-testid=machine-tile]').count()) === machines.length, 'one tile per machine');
  await until('the live stream to connect', () => page.locator('.live-dot.on').count());
  // The demo's factory clock runs at 60 times real time: its minute moves within seconds.
  const factoryTime = page.locator('[data-testid=sim-clock] [data-sim-clock-time]');
  const shownFirst = await factoryTime.textContent();
  check(/^\d{4}-\d\d-\d\d \d\d:\d\d$/.test(shownFirst), `the header shows the factory time: ${shownFirst}`);
  await until('the factory clock to run', async () => (await factoryTime.textContent()) !== shownFirst, 5);
  await shot(page, 'overview');

  // A state reported through the API turns the tile without a reload.
  const target = machines[machines.length - 1];
  await page.evaluate(() => { window.notReloaded = true; });
  await api('POST', `/api/v1/machines/${target.id}/states`, { state: 'down', reason: 'browser test' });
  const tile = page.locator(`[data-testid=machine-tile][data-machine-id="${target.id}"]`);
  await until('the tile to turn down', async () => (await tile.getAttribute('data-state')) === 'down');
  check(await page.evaluate(() => window.notReloaded === true), 'the tile changed live, without a reload');
  check((await tile.textContent()).includes('Down'), 'the tile names its new state');
  await api('POST', `/api/v1/machines/${target.id}/states`, { state: 'running' });
  await until('the tile to run again', async () => (await tile.getAttribute('data-state')) === 'running');
  await shot(page, 'overview-live');

  // The machine page with its charts.
  await page.click(`[data-testid=machine-tile][data-machine-id="${withMetric.machine.id}"]`);
  await page.waitForURL(`**/machines/${withMetric.machine.id}`);
  await until('a chart of the machine', () => page.locator('main svg').count());
  check((await page.locator('main h1').textContent()).includes(withMetric.machine.code), 'the machine page names it');
  check((await page.content()).includes(withMetric.metric), 'the machine page charts its metric');
  for (const range of ['1h', 'day']) {
    await page.goto(`${base}/machines/${withMetric.machine.id}?range=${range}`);
    await page.waitForSelector('main svg');
  }
  await shot(page, 'machine');
  // Units counted on this machine refresh its OEE panel without a reload.
  await until('the live stream to connect', () => page.locator('.live-dot.on').count());
  await page.evaluate(() => { window.notReloaded = true; });
  const oee = page.locator('#machine-oee');
  const shown = await oee.innerText();
  await api('POST', `/api/v1/machines/${withMetric.machine.id}/production`, { good: 7, ideal_unit_seconds: 30 });
  await until('the OEE panel to show the units', async () => (await oee.innerText()) !== shown);
  check(await page.evaluate(() => window.notReloaded === true), 'the OEE panel refreshed live, without a reload');
  // The charts' window ends now: they are drawn again as the factory clock moves on (a day's
  // 5-minute step is 5 s at the demo's 60 times).
  await page.evaluate(() => { document.getElementById('machine-charts').dataset.drawn = 'before'; });
  await until('the charts to be drawn again', async () => (await page.locator('#machine-charts[data-drawn]').count()) === 0, 20);
  check(await page.evaluate(() => window.notReloaded === true), 'the charts were drawn again without a reload');

  // The Gantt: bars, zoom.
  await page.goto(base + '/plan');
  const gantt = page.locator('svg#gantt');
  await gantt.waitFor();
  check((await gantt.locator('rect').count()) > 10, 'the Gantt draws the planned operations');
  const before = Number(await gantt.getAttribute('width'));
  await page.click('[data-zoom=in]');
  const after = Number(await gantt.getAttribute('width'));
  check(after > before, `zooming in widens the Gantt (${before} → ${after} px)`);
  await page.click('[data-zoom=fit]');
  // The "now" line keeps up with the factory clock while the page stays open.
  const nowLine = gantt.locator('line.now');
  const nowFirst = Number(await nowLine.getAttribute('x1'));
  await until('the now line to move', async () => Number(await nowLine.getAttribute('x1')) > nowFirst, 5);
  await shot(page, 'plan');
  // Another plan published while the page is open: the page says so, without a reload.
  await page.evaluate(() => { window.notReloaded = true; });
  await publishPlan();
  await page.locator('[data-testid=plan-news]').waitFor({ state: 'visible', timeout: 10000 });
  check(await page.evaluate(() => window.notReloaded === true), 'a newer plan is announced live on the plan page');

  // Orders and one order.
  await page.goto(base + '/orders');
  await page.waitForSelector('main table');
  await shot(page, 'orders');
  // A keyboard user in the list keeps their place when it refreshes (on every production report).
  const link = page.locator('#order-list a[href^="/orders/"]').nth(3);
  const href = await link.getAttribute('href');
  await link.focus();
  await page.evaluate(() => { document.getElementById('order-list').dataset.old = 'yes'; });
  await page.waitForSelector('#order-list:not([data-old])', { timeout: 20000 });
  check(await page.evaluate(h => document.activeElement.getAttribute('href') === h, href),
    'the keyboard focus stays on its order when the list refreshes');
  await page.locator('main table a[href^="/orders/"]').first().click();
  await page.waitForURL('**/orders/*');
  await shot(page, 'order');

  // A running order's counts give it a new version with every unit: a change of its priority
  // made meanwhile still goes through; one made after someone changed the order is refused.
  const running = await until('a running order', async () =>
    (await api('GET', '/api/v1/orders?status=running&limit=500')).items[0] || null, 60);
  const version = async () =>
    (await fetch(`${base}/api/v1/orders/${running.id}`, { headers: { Authorization: 'Bearer ' + token } })).headers.get('etag');
  await page.goto(base + `/orders/${running.id}`);
  const drawn = await version();
  await until('a unit counted on the running order', async () => (await version()) !== drawn || null, 60);
  const priority = running.priority === 3 ? 4 : 3;
  const change = page.locator('[data-testid=change-order]');
  await change.locator('summary').click();
  await change.locator('input[name=priority]').fill(String(priority));
  await change.locator('button[type=submit]').click();
  await until('the priority changed while units were counted', async () =>
    (await api('GET', `/api/v1/orders/${running.id}`)).priority === priority || null);
  await page.goto(base + `/orders/${running.id}`);
  const { number, variant_id, quantity, due, priority: now, material_ready } = await api('GET', `/api/v1/orders/${running.id}`);
  await api('PUT', `/api/v1/orders/${running.id}`, { number, customer: 'Changed Meanwhile Ltd', variant_id, quantity, due, priority: now, material_ready });
  await page.locator('[data-testid=change-order] summary').click();
  await page.locator('[data-testid=change-order] input[name=priority]').fill(String(priority === 3 ? 4 : 3));
  await page.locator('[data-testid=change-order] button[type=submit]').click();
  await page.waitForSelector('#flash.bad', { timeout: 10000 });
  check((await page.locator('#flash').textContent()).includes('412'), 'a change after someone else changed the order is refused');

  // A rush order entered on the orders page and released on its own page: the automatic repair
  // publishes a plan that has it.
  await page.goto(base + '/orders');
  const form = page.locator('[data-testid=new-order]');
  await form.locator('input[name=number]').fill('SO-BROWSER-RUSH');
  await form.locator('input[name=customer]').fill('Browser Test Ltd');
  await form.locator('input[name=quantity]').fill('5');
  await form.locator('input[name=priority]').fill('9');
  const offersMaterial = await form.locator('input[name=material_ready]').count() === 1;
  // A delivery quote first: when it would be done, entering nothing.
  const ordersBefore = (await api('GET', '/api/v1/orders?limit=500')).items.length;
  await form.locator('[data-testid=quote-order]').click();
  await page.waitForFunction(() => /done by \d{4}-\d{2}-\d{2} \d{2}:\d{2}/.test(document.querySelector('[data-testid=quote-result]').textContent), null, { timeout: 15000 });
  check((await api('GET', '/api/v1/orders?limit=500')).items.length === ordersBefore, 'a delivery quote enters nothing');
  await form.locator('button[type=submit]').click();
  await page.waitForURL('**/orders/*');
  const entered = (await api('GET', '/api/v1/orders?limit=500')).items.find(o => o.number === 'SO-BROWSER-RUSH');
  check(entered && entered.status === 'planned' && entered.priority === 9, 'the order form entered the order');
  check(entered.due.endsWith('T10:00:00Z'), `the due time is 18:00 at the site (${entered.due})`);
  check(offersMaterial && entered.material_ready == null, 'the form offers a material date, and one left empty is not sent');
  // Saved as it was, the change form says there is nothing to save and sends nothing.
  await page.locator('[data-testid=change-order] summary').click();
  await page.locator('[data-testid=change-order] button[type=submit]').click();
  await page.waitForFunction(() => (document.getElementById('flash').textContent || '').length > 0, null, { timeout: 10000 });
  const unchangedSay = await page.locator('#flash').textContent();
  check(unchangedSay.startsWith('Nothing to save')
    && (await api('GET', `/api/v1/orders/${entered.id}`)).revision === entered.revision,
    `a change form saved as it was sends nothing (${unchangedSay})`);
  // The same number again: refused, with a link to the order that has it.
  await page.goto(base + '/orders');
  await form.locator('input[name=number]').fill('SO-BROWSER-RUSH');
  await form.locator('input[name=customer]').fill('Browser Test Ltd');
  await form.locator('input[name=quantity]').fill('5');
  await form.locator('button[type=submit]').click();
  await page.waitForSelector('#flash.bad [data-testid=flash-link]', { timeout: 10000 });
  check(await page.locator('#flash [data-testid=flash-link]').getAttribute('href') === `/orders/${entered.id}`,
    'an order number in use links the order that has it');
  // A due time already past asks first; dismissed, nothing is entered.
  await form.locator('input[name=number]').fill('SO-BROWSER-PAST');
  await form.locator('input[name=due]').fill('2020-01-06T18:00');
  const pastAsked = new Promise(resolve => page.once('dialog', dialog => { resolve(dialog.message()); dialog.dismiss(); }));
  await form.locator('button[type=submit]').click();
  check((await pastAsked).includes('late from the start'), 'a due time already past asks first');
  await page.waitForTimeout(500);
  check(!(await api('GET', '/api/v1/orders?number=SO-BROWSER-PAST')).items.length, 'dismissed, the order is not entered');
  // Material after the due time asks too.
  await form.locator('input[name=due]').fill('2030-01-07T18:00');
  await form.locator('input[name=material_ready]').fill('2030-01-09T08:00');
  const materialAsked = new Promise(resolve => page.once('dialog', dialog => { resolve(dialog.message()); dialog.dismiss(); }));
  await form.locator('button[type=submit]').click();
  check((await materialAsked).includes('arrives after the due time'), 'material after the due time asks first');
  await page.goto(base + `/orders/${entered.id}`);
  await page.click(`button[data-action="POST /api/v1/orders/${entered.id}/release"]`);
  // The page reloads once the order is released; wait for that before going elsewhere.
  await page.locator('h1 .badge.status-released').waitFor({ timeout: 10000 });
  // The Release button is gone after the reload; the focus is near where it was, not on <body>.
  await page.waitForFunction(() => document.activeElement && document.activeElement !== document.body, null, { timeout: 5000 })
    .catch(() => {});
  check(await page.evaluate(() => document.activeElement !== document.body), 'the focus comes back after an action reloads the page');
  // (A breakdown repair in the demo may be the one that slots it in, so look for the order in
  // the active plan rather than for the trigger.)
  const repaired = await until('an automatic repair with the rush order', async () => {
    const active = (await api('GET', '/api/v1/plans?limit=5')).items.find(p => p.status === 'active');
    if (!active || !active.trigger) return null;
    const detail = await api('GET', `/api/v1/plans/${active.id}`);
    return detail.etas.some(e => e.order_id === entered.id) ? active : null;
  });
  check(true, `the released rush order was slotted in by plan ${repaired.id} (${repaired.trigger.kind})`);

  // Acknowledge the test alarm once it has fired.
  const alarm = await until('the test alarm to fire', async () => {
    const open = await api('GET', '/api/v1/alarms?status=active&limit=100');
    return open.items.find(a => a.rule_id === rule.id);
  }, 60);
  await page.goto(base + '/alarms');
  const row = page.locator(`[data-testid=alarm-row][data-alarm-id="${alarm.id}"]`);
  await row.locator('input[name=note]').fill('Coolant topped up; pump checked.');
  await row.locator('[data-testid=acknowledge]').click();
  await until('the acknowledgement to be stored', async () => {
    const stored = await api('GET', `/api/v1/alarms?limit=100`);
    const found = stored.items.find(a => a.id === alarm.id);
    return found && found.acknowledged_by === 'browser-planner' && found.note === 'Coolant topped up; pump checked.';
  });
  await page.waitForSelector(`[data-testid=alarm-row][data-alarm-id="${alarm.id}"]:not(:has([data-testid=acknowledge]))`);
  check(true, 'the alarm was acknowledged from the page with a note and the button went away');
  const note = await row.locator('[data-testid=alarm-note]').textContent();
  check(note === 'Coolant topped up; pump checked.', `the acknowledgement's note shows with it (${note})`);
  await shot(page, 'alarms');
  await api('PUT', `/api/v1/alarm-rules/${rule.id}`, { ...rule, id: undefined, enabled: false });

  // A rule entered on the alarms page with a deadband; the deadband is offered only for limits.
  const ruleForm = page.locator('form[data-action="POST /api/v1/alarm-rules"]');
  await ruleForm.locator('input[name=name]').fill('Browser coolant');
  await ruleForm.locator('input[name=metric]').fill('coolant_c');
  await ruleForm.locator('select[name="condition.kind"]').selectOption('stale');
  check(await ruleForm.locator('input[name=deadband]').isHidden(), 'a staleness rule offers no deadband');
  await ruleForm.locator('select[name="condition.kind"]').selectOption('above');
  await ruleForm.locator('input[name="condition.threshold"]').fill('40');
  await ruleForm.locator('input[name=deadband]').fill('1.5');
  // The page reloads once the rule is stored.
  await Promise.all([page.waitForEvent('load'), ruleForm.locator('button[type=submit]').click()]);
  const coolant = await until('the rule entered on the page', async () => {
    const rules = await api('GET', '/api/v1/alarm-rules');
    return rules.find(r => r.name === 'Browser coolant');
  });
  check(coolant.deadband === 1.5 && coolant.condition.threshold === 40, 'the rule form stored the deadband');
  await api('DELETE', `/api/v1/alarm-rules/${coolant.id}`);

  await page.goto(base + '/settings');
  await shot(page, 'settings');

  // On paper: the content, without the navigation and the buttons nobody can press there.
  await page.goto(base + '/');
  await page.emulateMedia({ media: 'print' });
  const printed = await page.evaluate(() => ({
    nav: getComputedStyle(document.querySelector('header.top nav')).display,
    buttons: [...document.querySelectorAll('main button')].filter(b => getComputedStyle(b).display !== 'none').length,
    heading: getComputedStyle(document.querySelector('main h1')).display,
  }));
  check(printed.nav === 'none' && printed.buttons === 0 && printed.heading !== 'none',
    `printed, a page keeps its content without navigation or buttons (${JSON.stringify(printed)})`);
  await page.emulateMedia({ media: 'screen' });

  // Language switch.
  await page.goto(base + '/');
  await page.click('[data-testid=switch-language]');
  await page.waitForSelector('html[lang="zh-HK"]');
  check((await page.locator('header nav').textContent()).includes('總覽'), 'the navigation is in Chinese');
  check((await page.locator('main h1').textContent()).includes('工廠總覽'), 'the page title is in Chinese');
  await shot(page, 'overview-zh');
  for (const [path, name] of [['/plan', 'plan-zh'], ['/alarms', 'alarms-zh'], ['/orders', 'orders-zh']]) {
    await page.goto(base + path);
    await shot(page, name);
  }
  await page.click('[data-testid=switch-language]');
  await page.waitForSelector('html[lang="en"]');
  check(true, 'switching back gives English');

  // --- Operator on a tablet: start and finish an operation. ---------------------------------
  // The simulated machines are busy, and an operator may not start work on a busy machine: a
  // hand-worked bench added now gets a one-step order, released and planned. The simulator takes
  // up new machines too and starts their planned work when its time comes; the order's material
  // arrives three factory hours from now (three real minutes at 60x), so the plan starts it no
  // earlier and the operator, whom material on its way does not stop, is first.
  const site = machines[0].site_id;
  const bench = await api('POST', '/api/v1/machines', {
    site_id: site, code: 'hand-bench', name: 'Hand bench', kind: 'assembly', rated_power_kw: 0.5,
  });
  const routing = await api('POST', '/api/v1/routings', {
    code: 'hand-fit', name: 'Hand fitting',
    steps: [{ name: 'fit by hand', eligible_machines: [bench.id], setup_seconds: 0, unit_seconds: 30, setup_family: 'hand' }],
  });
  const product = await api('POST', '/api/v1/products', { code: 'hand-kit', name: 'Hand kit', family: 'kits' });
  const variant = await api('POST', '/api/v1/variants', {
    product_id: product.id, code: 'hand-kit-a', name: 'Hand kit A', routing_id: routing.id,
  });
  const factoryNow = Date.parse((await publishPlan()).created_at);
  const handOrder = await api('POST', '/api/v1/orders', {
    number: 'SO-BROWSER-HAND', customer: 'Browser Test Ltd', variant_id: variant.id, quantity: 8,
    due: new Date(factoryNow + 7 * 86400000).toISOString(), priority: 5,
    material_ready: new Date(factoryNow + 3 * 3600000).toISOString(),
  });
  await api('POST', `/api/v1/orders/${handOrder.id}/release`);
  await publishPlan();
  const choice = await until('the hand-worked order in the plan', async () => {
    const dispatch = await api('GET', `/api/v1/machines/${bench.id}/dispatch`);
    const item = dispatch.queue.find(i => i.order_id === handOrder.id);
    return item ? { machine: bench, item } : null;
  }, 60);
  const tablet = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'en-GB', hasTouch: true });
  const station = await signIn(tablet, 'browser-operator', password);
  await station.goto(base + '/station');
  await shot(station, 'station-choose');
  await station.goto(`${base}/station?machine=${choice.machine.id}`);
  const operation = choice.item.operation_id;
  await station.click(`button[data-action="POST /api/v1/operations/${operation}/start"]`);
  const finish = station.locator(`form[data-action="POST /api/v1/operations/${operation}/finish"]`);
  await finish.waitFor();
  check(true, 'the started operation shows with its finish form');
  const focused = await station.evaluate(() => document.activeElement.tagName + ' ' + (document.activeElement.textContent || '').trim());
  check(focused.startsWith('BUTTON'), `after Start the focus is on a button, not in a field that would hold the page still (${focused})`);
  await shot(station, 'station');
  // Units counted after the page was drawn (a counter, another person): the finish the page
  // offered is refused and the page drawn again with them, instead of counting them twice.
  await finish.locator('input[name=good]').focus();
  await api('POST', `/api/v1/machines/${choice.machine.id}/production`, { good: 2, operation_id: operation });
  await finish.locator('button[type=submit]').click();
  await station.waitForSelector('#flash.bad', { timeout: 10000 });
  const refusal = await station.locator('#flash').textContent();
  check(/count changed since it was read \(0 units then, 2 now/.test(refusal), `a stale finish is refused and says why (${refusal})`);
  const counted = await station.locator('[data-testid=counted]').textContent();
  check(/Good 2/.test(counted), `the page was drawn again with the new count (${counted})`);
  // A finish short of the lot asks first; answered no, nothing is sent.
  await finish.locator('input[name=good]').fill('4');
  await finish.locator('input[name=scrap]').fill('1');
  const asked = new Promise(resolve => station.once('dialog', dialog => { resolve(dialog.message()); dialog.dismiss(); }));
  await finish.locator('button[type=submit]').click();
  const question = await asked;
  check(question.startsWith('Not counted: 1 of the lot. Finish anyway?'), `a short finish asks first (${question})`);
  const kept = await api('GET', `/api/v1/orders/${choice.item.order_id}`);
  check(kept.operations.find(o => o.id === operation).status === 'running', 'a short finish answered no sends nothing');
  await finish.locator('input[name=good]').fill('5');
  await finish.locator('input[name=scrap_reason]').fill('burr on edge');
  await finish.locator('button[type=submit]').click();
  const done = await until('the operation to be finished', async () => {
    const order = await api('GET', `/api/v1/orders/${choice.item.order_id}`);
    const op = order.operations.find(o => o.id === operation);
    return op.status === 'done' ? op : null;
  });
  check(done.good === 7 && done.scrap === 1, 'the finish added 5 good and 1 scrap to the 2 counted');
  const scrapped = (await api('GET', `/api/v1/oee?machine=${choice.machine.id}`)).machines[0].scrap_reasons;
  check(scrapped.some(r => r.reason === 'burr on edge' && r.units >= 1), `the finish keeps its scrap reason (${JSON.stringify(scrapped)})`);
  await station.waitForSelector(`form[data-action="POST /api/v1/operations/${operation}/finish"]`, { state: 'detached' });
  // The queue follows a newly published plan without a reload.
  await station.evaluate(() => { document.getElementById('next-work').dataset.old = 'yes'; });
  await publishPlan();
  await station.waitForSelector('#next-work:not([data-old])', { timeout: 10000 });
  check(true, 'the station queue refreshed live after a plan was published');
  // The tablet's chooser offers the machine it last opened first.
  await station.goto(base + '/station');
  const first = station.locator('.station .machines a').first();
  check((await first.getAttribute('data-machine-id')) === String(choice.machine.id)
    && (await first.getAttribute('class')).includes('last-used'), 'the chooser puts the last machine first');
  // A viewer is not offered the station's buttons.
  const look = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const viewer = await signIn(look, 'browser-viewer', password);
  await viewer.goto(`${base}/station?machine=${choice.machine.id}`);
  check((await viewer.locator('button[data-action]').count()) === 0, 'a viewer gets no station buttons');
  check((await viewer.locator('header nav a[href="/station"]').count()) === 0, 'a viewer has no station link');

  // A 10-inch tablet in portrait.
  const portrait = await browser.newContext({ viewport: { width: 800, height: 1280 }, hasTouch: true });
  const small = await signIn(portrait, 'browser-operator', password);
  await small.goto(`${base}/station?machine=${choice.machine.id}`);
  await shot(small, 'station-tablet-portrait');
  const overflow = await small.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `the station fits a 10-inch tablet without sideways scrolling (${overflow} px over)`);
  // A phone: the queue's lots stack, each with its Start button (or what holds it) on screen.
  const everyMachine = await api('GET', '/api/v1/machines?limit=500');
  let queued = null;
  for (const machine of everyMachine.items) {
    const dispatch = await api('GET', `/api/v1/machines/${machine.id}/dispatch`);
    if (dispatch.queue.length) { queued = machine; break; }
  }
  check(queued !== null, 'some machine has work queued for the phone check');
  const phoneContext = await browser.newContext({ viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true });
  const phone = await signIn(phoneContext, 'browser-operator', password);
  await phone.goto(`${base}/station?machine=${queued.id}`);
  await phone.waitForSelector('[data-testid=next-operation]');
  await shot(phone, 'station-phone');
  // The header leaves the phone's screen to the work: the pages in one row, all of them on it.
  const header = await phone.evaluate(() => {
    const links = [...document.querySelectorAll('header.top nav a')].map(a => a.getBoundingClientRect());
    return {
      height: Math.round(document.querySelector('header.top').getBoundingClientRect().height),
      rows: new Set(links.map(r => Math.round(r.top))).size,
      right: Math.round(Math.max(...links.map(r => r.right))),
    };
  });
  check(header.height <= 190 && header.rows === 1 && header.right <= 390,
    `a phone's header is short, with every page link in one row on screen (${JSON.stringify(header)})`);
  const rows = await phone.evaluate(() => [...document.querySelectorAll('[data-testid=next-operation]')].map(row => {
    const action = row.querySelector('[data-testid=start-operation], [data-testid=start-blocked]');
    const box = (action || row).getBoundingClientRect();
    return { right: Math.round(row.getBoundingClientRect().right), action: action ? Math.round(box.right) : null };
  }));
  check(rows.length > 0 && rows.every(r => r.right <= 390 && r.action !== null && r.action <= 390),
    `every queued lot and its Start button fit a phone's width (${JSON.stringify(rows.slice(0, 3))})`);
  // Without a network, an action says in the page's words that nothing was saved.
  await phoneContext.setOffline(true);
  await phone.locator('.reasons button[data-action]').first().click();
  await phone.waitForSelector('#flash.bad');
  const unsent = await phone.locator('#flash').textContent();
  check(unsent.startsWith('Not sent: there is no connection to the platform'), `an action without a network says so (${unsent})`);
  await phoneContext.setOffline(false);
  await small.goto(base + '/plan');
  await small.waitForSelector('svg#gantt');
  const fit = await small.evaluate(() => {
    const svg = document.getElementById('gantt');
    return { chart: Number(svg.getAttribute('width')), room: svg.parentElement.clientWidth };
  });
  check(fit.chart <= fit.room + 1, `the Gantt fits a portrait tablet (${fit.chart} px in ${fit.room} px)`);
  await shot(small, 'plan-tablet-portrait');
  // An admin binds a maintenance account to a second site on the settings page, and frees it
  // again (the empty choice is sent as null).
  const plant = await api('POST', '/api/v1/sites', { code: 'br-2', name: 'Browser plant', time_zone: 'Europe/Berlin' });
  await api('POST', '/api/v1/users', { username: 'browser-fitter', role: 'maintenance', password: randomBytes(12).toString('hex') });
  const office = await signIn(await browser.newContext({ viewport: { width: 1280, height: 800 } }), 'browser-admin', password);
  const fitterSite = async () => (await api('GET', '/api/v1/users')).find(u => u.username === 'browser-fitter').site_id;
  for (const [choice, expected, what] of [[String(plant.id), plant.id, 'binds'], ['', null, 'unbinds']]) {
    await office.goto(base + '/settings');
    const row = office.locator('[data-testid=user-row]', { hasText: 'browser-fitter' });
    await row.locator('summary').click();
    const siteForm = row.locator('form', { has: office.locator('select[name=site_id]') });
    await siteForm.locator('select[name=site_id]').selectOption(choice);
    await Promise.all([office.waitForEvent('load'), siteForm.locator('button[type=submit]').click()]);
    check(await fitterSite() === expected, `the settings page ${what} a maintenance account's site`);
  }
  // With two sites, a new alarm rule may watch every machine of one of them; the site is asked
  // only while no machine is chosen.
  await office.goto(base + '/alarms');
  const siteRule = office.locator('[data-testid=rule-form]').last();
  const ruleSite = siteRule.locator('select[name=site_id]');
  await siteRule.locator('select[name=machine_id]').selectOption({ index: 1 });
  check(await ruleSite.isHidden(), 'a rule for one machine is asked no site');
  await siteRule.locator('select[name=machine_id]').selectOption('');
  await ruleSite.selectOption(String(plant.id));
  await siteRule.locator('input[name=name]').fill('Browser plant coolant');
  await siteRule.locator('input[name=metric]').fill('coolant_c');
  await siteRule.locator('select[name="condition.kind"]').selectOption('above');
  await siteRule.locator('input[name="condition.threshold"]').fill('45');
  await Promise.all([office.waitForEvent('load'), siteRule.locator('button[type=submit]').click()]);
  const plantRule = (await api('GET', '/api/v1/alarm-rules')).find(r => r.name === 'Browser plant coolant');
  check(plantRule && plantRule.site_id === plant.id && plantRule.machine_id == null,
    `the rule form makes a rule for every machine of one site (${JSON.stringify(plantRule)})`);
  await api('DELETE', `/api/v1/alarm-rules/${plantRule.id}`);
  // The factory page sets a site up: a new site with a fixed offset, the second site's shifts
  // and holidays, a machine with its capabilities, and that machine retired.
  await office.goto(base + '/factory');
  const newSite = office.locator('[data-testid=new-site]');
  await newSite.locator('input[name=code]').fill('br-3');
  await newSite.locator('input[name=name]').fill('Browser annex');
  await newSite.locator('input[name=time_zone]').fill('+05:30');
  await Promise.all([office.waitForEvent('load'), newSite.locator('button[type=submit]').click()]);
  const annex = (await api('GET', '/api/v1/sites')).items.find(s => s.code === 'br-3');
  check(annex && annex.utc_offset === '+05:30' && annex.time_zone == null,
    `a site's zone field takes a fixed offset (${JSON.stringify(annex)})`);
  const plantRow = () => office.locator('[data-testid=site-row]', { hasText: 'Browser plant' });
  await plantRow().locator('summary').click();
  const calendarForm = plantRow().locator('[data-testid=calendar-form]');
  const firstShift = calendarForm.locator('[data-testid=shift-row]').first();
  await firstShift.locator('input[name="shifts.0.name"]').fill('day');
  for (const day of ['mon', 'tue', 'wed', 'thu', 'fri']) await firstShift.locator(`input[value=${day}]`).check();
  await firstShift.locator('input[name="shifts.0.start"]').fill('07:00');
  await firstShift.locator('input[name="shifts.0.end"]').fill('15:30');
  await calendarForm.locator('textarea[name=holidays]').fill('2027-05-01, 2027-12-25');
  await shot(office, 'factory-calendar');
  await Promise.all([office.waitForEvent('load'), calendarForm.locator('button[type=submit]').click()]);
  const plantCalendar = await api('GET', `/api/v1/sites/${plant.id}/calendar`);
  check(JSON.stringify(plantCalendar) === JSON.stringify({
    shifts: [{ name: 'day', days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '07:00', end: '15:30' }],
    holidays: ['2027-05-01', '2027-12-25'],
  }), `the calendar form sets a site's shifts and holidays, blank rows left out (${JSON.stringify(plantCalendar)})`);
  check((await plantRow().textContent()).includes('day: Mon–Fri 07:00–15:30'), 'the site row shows its new shift');
  await plantRow().locator('summary').click();
  await plantRow().locator('[data-testid=calendar-form] button[type=submit]').click();
  const nothingToSave = () => until('the page to say there is nothing to save',
    async () => (await office.locator('#flash').textContent()).startsWith('Nothing to save'), 5);
  check(await nothingToSave(), 'a calendar saved as it was sends nothing');
  const newMachine = office.locator('[data-testid=new-machine]');
  await newMachine.locator('select[name=site_id]').selectOption(String(plant.id));
  await newMachine.locator('input[name=code]').fill('br-mill');
  await newMachine.locator('input[name=name]').fill('Browser mill');
  await newMachine.locator('select[name=kind]').selectOption('cnc_mill');
  await newMachine.locator('input[name=capabilities]').fill('5-axis, abs');
  await newMachine.locator('input[name=rated_power_kw]').fill('7.5');
  await Promise.all([office.waitForEvent('load'), newMachine.locator('button[type=submit]').click()]);
  const mill = (await api('GET', `/api/v1/machines?site=${plant.id}`)).items.find(m => m.code === 'br-mill');
  check(mill && mill.kind === 'cnc_mill' && JSON.stringify(mill.capabilities) === '["5-axis","abs"]'
    && mill.rated_power_kw === 7.5 && mill.line_id == null, `the factory page adds a machine (${JSON.stringify(mill)})`);
  const millRow = office.locator('[data-testid=machine-row]', { hasText: 'Browser mill' });
  await millRow.locator('summary').click();
  await millRow.locator('input[name=retired]').check();
  await Promise.all([office.waitForEvent('load'), millRow.locator('button[type=submit]').click()]);
  check((await api('GET', `/api/v1/machines/${mill.id}`)).retired_at != null, 'the factory page retires a machine');
  check((await office.locator('[data-testid=retired-machines]').textContent()).includes('Browser mill'), 'a retired machine is listed apart');
  await shot(office, 'factory');
  // The products page: a routing from its form (two machines ticked for its step, the setup typed
  // in minutes), the same saved again (nothing to send), and a variant made by it.
  await office.goto(base + '/products');
  await office.locator('[data-testid=new-routing-details] > summary').click();
  const newRouting = office.locator('[data-testid=new-routing]');
  await newRouting.locator('input[name=code]').fill('br-route');
  await newRouting.locator('input[name=name]').fill('Browser route');
  const firstStep = newRouting.locator('[data-testid=step-row]').first();
  await firstStep.locator('input[name="steps.0.name"]').fill('mill');
  const ticks = firstStep.locator('input[data-type=int-set]');
  const ticked = [];
  for (const i of [0, 1]) {
    await ticks.nth(i).check();
    ticked.push(Number(await ticks.nth(i).getAttribute('value')));
  }
  await firstStep.locator('input[name="steps.0.setup_seconds"]').fill('2.5');
  await firstStep.locator('input[name="steps.0.unit_seconds"]').fill('30');
  await firstStep.locator('input[name="steps.0.setup_family"]').fill('alu');
  await Promise.all([office.waitForEvent('load'), newRouting.locator('button[type=submit]').click()]);
  const route = (await api('GET', '/api/v1/routings?limit=500')).items.find(r => r.code === 'br-route');
  check(route && JSON.stringify(route.steps) === JSON.stringify(
    [{ name: 'mill', eligible_machines: ticked, setup_seconds: 150, unit_seconds: 30, setup_family: 'alu' }]),
  `the routing form makes a routing, blank step rows left out (${JSON.stringify(route)})`);
  const routeCard = office.locator(`#routing-${route.id}`);
  await routeCard.locator(':scope > details > summary').click();
  await routeCard.locator('[data-testid=routing-form] button[type=submit]').click();
  check(await nothingToSave(), 'a routing saved as it was sends nothing');
  const productCard = office.locator('[data-testid=product]').first();
  await productCard.locator(':scope > details > summary').click();
  const newVariant = productCard.locator('[data-testid=new-variant]');
  await newVariant.locator('input[name=code]').fill('br-var');
  await newVariant.locator('input[name=name]').fill('Browser variant');
  await newVariant.locator('select[name=routing_id]').selectOption(String(route.id));
  await newVariant.locator('select[name="bom.0.material_id"]').selectOption({ index: 1 });
  await newVariant.locator('input[name="bom.0.kg_per_unit"]').fill('0.3');
  await shot(office, 'products-variant');
  await Promise.all([office.waitForEvent('load'), newVariant.locator('button[type=submit]').click()]);
  const browserVariant = (await api('GET', '/api/v1/variants?limit=500')).items.find(v => v.code === 'br-var');
  check(browserVariant && browserVariant.routing_id === route.id && browserVariant.bom.length === 1
    && browserVariant.bom[0].kg_per_unit === 0.3, `the variant form adds a variant with its bill of materials (${JSON.stringify(browserVariant)})`);
  await shot(office, 'products');
  // An administrator issues a machine gateway's token (its MQTT password) on the settings page.
  const gateway = await api('POST', '/api/v1/users', { username: 'browser-gw', role: 'device', site_id: plant.id });
  await office.goto(base + '/settings');
  const newToken = office.locator('[data-testid=new-token]');
  await newToken.locator('input[name=name]').fill('plant gateway');
  await newToken.locator('select[name=user_id]').selectOption(String(gateway.id));
  await newToken.locator('button[type=submit]').click();
  const secret = await office.locator('dialog code.secret').textContent();
  await Promise.all([office.waitForEvent('load'), office.locator('dialog button').click()]);
  const issued = (await api('GET', '/api/v1/tokens')).find(t => t.name === 'plant gateway');
  check(issued && issued.user_id === gateway.id && secret.startsWith(issued.prefix),
    `the settings page issues a token for a device account (${JSON.stringify(issued)})`);
  console.log('all dashboard checks passed; screenshots in', artifacts);
} finally {
  await browser.close();
}

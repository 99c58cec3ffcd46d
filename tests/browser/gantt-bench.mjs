// Gantt bench: how soon a plan of about 2,000 operations is interactive in headless chromium.
// Starts `microfactory bench dashboard --hold` (release build; pass another binary as the first
// argument), opens /plan five times and prints a table: load (navigation start to the load
// event), first contentful paint, and the time a zoom click takes to the next painted frame.
//
//   cargo build --release && node tests/browser/gantt-bench.mjs
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const binary = process.argv[2] || fileURLToPath(new URL('../../target/release/microfactory', import.meta.url));
const runs = 5;
const server = spawn(binary, ['bench', 'dashboard', '--requests', '5', '--hold', '127.0.0.1:0'], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
const { url, token } = await new Promise((resolve, reject) => {
  const lines = createInterface({ input: server.stdout });
  lines.on('line', line => {
    if (line.startsWith('dashboard bench:')) console.log(line);
    const match = line.match(/^serving url=(\S+) token=(\S+)/);
    if (match) resolve({ url: match[1], token: match[2] });
  });
  server.on('exit', code => reject(new Error('the bench server exited with ' + code)));
});

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
const median = values => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const results = { load: [], fcp: [], zoomIn: [], zoomFit: [], interactive: [] };
let bars = 0;
let kib = 0;
try {
  for (let run = 0; run < runs; run++) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    await context.addCookies([{ name: 'mf_session', value: token, url }]);
    const page = await context.newPage();
    await page.goto(url + '/plan', { waitUntil: 'load' });
    const timing = await page.evaluate(() => {
      const nav = performance.getEntriesByType('navigation')[0];
      const fcp = performance.getEntriesByName('first-contentful-paint')[0];
      return { load: nav.loadEventEnd, fcp: fcp ? fcp.startTime : NaN, size: nav.transferSize || nav.encodedBodySize };
    });
    bars = await page.locator('svg#gantt a > rect:first-of-type').count();
    kib = timing.size / 1024;
    // A zoom click, timed from the click to the second animation frame after it (the frame that
    // shows the new layout).
    const zoom = how => page.evaluate(how => new Promise(resolve => {
      const started = performance.now();
      document.querySelector(`[data-zoom="${how}"]`).click();
      requestAnimationFrame(() => requestAnimationFrame(() => resolve(performance.now() - started)));
    }), how);
    const zoomIn = await zoom('in');
    const zoomFit = await zoom('fit');
    results.load.push(timing.load);
    results.fcp.push(timing.fcp);
    results.zoomIn.push(zoomIn);
    results.zoomFit.push(zoomFit);
    results.interactive.push(timing.load + zoomIn);
    await context.close();
  }
} finally {
  await browser.close();
  server.kill('SIGINT');
}
console.log(`Gantt in chromium: ${bars} operation bars, ${kib.toFixed(0)} KiB page, median of ${runs} runs`);
console.log('measure                          ms');
console.log(`load (navigation → load event)  ${median(results.load).toFixed(1).padStart(7)}`);
console.log(`first contentful paint          ${median(results.fcp).toFixed(1).padStart(7)}`);
console.log(`zoom in → next frame            ${median(results.zoomIn).toFixed(1).padStart(7)}`);
console.log(`zoom fit → next frame           ${median(results.zoomFit).toFixed(1).padStart(7)}`);
console.log(`load + first zoom (interactive) ${median(results.interactive).toFixed(1).padStart(7)}`);

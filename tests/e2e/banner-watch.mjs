// Watches the UI's "service unavailable" banner in headless Chromium, for scripts/drill.sh.
// Usage: node banner-watch.mjs URL. Prints one JSON line per event, with epoch milliseconds:
//   {"event":"ready","t":...}                 the page loaded and listed books
//   {"event":"banner","visible":true,"t":...} the banner appeared (or went: false)
//   {"event":"list","rows":N,"t":...}         the list was re-rendered (a reload without a page reload)
// Runs until stdin closes.

import { chromium } from 'playwright-core';

const url = process.argv[2];
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const page = await browser.newPage();
const say = (event) => process.stdout.write(`${JSON.stringify({ ...event, t: Date.now() })}\n`);
await page.exposeFunction('__drillReport', (event) => say(event));
await page.goto(url);
await page.locator('#book-rows tr').first().waitFor({ timeout: 30000 });
await page.evaluate(() => {
  window.__samePage = true;
  const banner = document.getElementById('offline-banner');
  new MutationObserver(() => window.__drillReport({ event: 'banner', visible: !banner.hidden }))
    .observe(banner, { attributes: true, attributeFilter: ['hidden'] });
  const rows = document.getElementById('book-rows');
  new MutationObserver(() => window.__drillReport({ event: 'list', rows: rows.children.length }))
    .observe(rows, { childList: true });
});
say({ event: 'ready' });

process.stdin.resume();
process.stdin.on('end', async () => {
  const same = await page.evaluate(() => window.__samePage === true).catch(() => false);
  say({ event: 'done', samePage: same });
  await browser.close();
  process.exit(0);
});

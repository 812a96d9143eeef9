// The catalogue: listing, pages, search, sort, the genre filter, state in the URL, and an
// accessibility scan.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createRequire } from 'node:module';
import { startStack } from './harness.mjs';

const require = createRequire(import.meta.url);
let stack;

const rows = (page) => page.locator('#book-rows tr');
const titles = (page) => page.locator('#book-rows td.title').allTextContents();

before(async () => {
  stack = await startStack();
  // 25 books: "Alpha 01" … "Alpha 25"; every fifth a poem; two by Ursula K. Le Guin.
  for (let i = 1; i <= 25; i += 1) {
    const n = String(i).padStart(2, '0');
    await stack.addBook({ title: `Alpha ${n}`, author: `Writer ${n}`, year: 1900 + i, genre: i % 5 === 0 ? 'Poetry' : 'Novel' });
  }
  await stack.addBook({ title: 'The Dispossessed', author: 'Ursula K. Le Guin', year: 1974, genre: 'Science fiction' });
  await stack.addBook({ title: 'A Wizard of Earthsea', author: 'Ursula K. Le Guin', year: 1968, genre: 'Fantasy' });
});

after(async () => stack?.close());

test('the catalogue lists books sorted by title, 20 to a page', async () => {
  const page = await stack.page();
  await page.goto(stack.base);
  await page.locator('#book-rows tr').first().waitFor();
  assert.equal(await rows(page).count(), 20);
  const shown = await titles(page);
  assert.deepEqual(shown.slice(0, 3), ['A Wizard of Earthsea', 'Alpha 01', 'Alpha 02']);
  assert.match(await page.locator('#list-status').textContent(), /Showing 1–20 of 27 books/);
  assert.equal(await page.locator('#page-info').textContent(), 'Page 1 of 2');
  assert.ok(await page.locator('#page-prev').isDisabled());
  await stack.screenshot(page, 'catalogue');
  assert.deepEqual(page.problems, []);
});

test('next and previous pages follow the Link header and update the URL', async () => {
  const page = await stack.page();
  await page.goto(stack.base);
  await rows(page).first().waitFor();
  await page.click('#page-next');
  await page.waitForFunction(() => document.querySelector('#page-info').textContent === 'Page 2 of 2');
  assert.equal(await rows(page).count(), 7);
  assert.match(page.url(), /offset=20/);
  assert.ok(await page.locator('#page-next').isDisabled());
  await page.goBack();
  await page.waitForFunction(() => document.querySelector('#page-info').textContent === 'Page 1 of 2');
  assert.deepEqual(page.problems, []);
});

test('search finds titles and authors, case-insensitively, and survives a reload', async () => {
  const page = await stack.page();
  await page.goto(stack.base);
  await rows(page).first().waitFor();
  await page.fill('#filter-q', 'le guin');
  await page.waitForFunction(() => document.querySelectorAll('#book-rows tr').length === 2);
  assert.match(page.url(), /q=le\+guin/);
  await page.reload();
  await page.waitForFunction(() => document.querySelectorAll('#book-rows tr').length === 2);
  assert.equal(await page.inputValue('#filter-q'), 'le guin');
  assert.deepEqual(await titles(page), ['A Wizard of Earthsea', 'The Dispossessed']);

  await page.fill('#filter-q', 'nothing like this');
  await page.locator('#list-empty').waitFor();
  assert.equal(await page.locator('#list-empty').textContent(), 'No books match this search.');
  await stack.screenshot(page, 'search-empty');
  assert.deepEqual(page.problems, []);
});

test('sorting and the genre filter change the list and the URL', async () => {
  const page = await stack.page();
  await page.goto(`${stack.base}/?genre=Poetry`);
  await page.waitForFunction(() => document.querySelectorAll('#book-rows tr').length === 5);
  assert.equal(await page.inputValue('#filter-genre'), 'Poetry');
  await page.selectOption('#filter-sort', '-year');
  await page.waitForFunction(() => document.querySelector('#book-rows td.title')?.textContent === 'Alpha 25');
  assert.deepEqual(await titles(page), ['Alpha 25', 'Alpha 20', 'Alpha 15', 'Alpha 10', 'Alpha 05']);
  assert.match(page.url(), /sort=-year/);
  assert.match(page.url(), /genre=Poetry/);
  await page.reload();
  await page.waitForFunction(() => document.querySelector('#book-rows td.title')?.textContent === 'Alpha 25');
  assert.equal(await page.inputValue('#filter-sort'), '-year');
  assert.deepEqual(page.problems, []);
});

test('a shared link with a page size shows that page', async () => {
  const page = await stack.page();
  await page.goto(`${stack.base}/?limit=10&offset=10`);
  await page.waitForFunction(() => document.querySelector('#page-info').textContent === 'Page 2 of 3');
  assert.equal(await rows(page).count(), 10);
  assert.equal(await page.inputValue('#filter-limit'), '10');
});

test('the page has no serious or critical accessibility violations, light or dark', async () => {
  for (const colorScheme of ['light', 'dark']) {
    // axe is injected as an inline script, which the page's CSP rightly forbids.
    const page = await stack.page({ bypassCSP: true, colorScheme });
    await page.goto(stack.base);
    await rows(page).first().waitFor();
    await page.addScriptTag({ path: require.resolve('axe-core/axe.min.js') });
    const results = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
    const serious = results.violations.filter((v) => ['serious', 'critical'].includes(v.impact));
    assert.deepEqual(serious.map((v) => `${v.id}: ${v.help} (${v.nodes.length})`), [], colorScheme);
    await stack.screenshot(page, `catalogue-${colorScheme}`);
  }
});

test('on a phone-sized screen the catalogue fits without scrolling sideways', async () => {
  const page = await stack.page({ viewport: { width: 375, height: 800 }, isMobile: true });
  await page.goto(stack.base);
  await rows(page).first().waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px too wide`);
  await stack.screenshot(page, 'phone');
});

test('the UI is served with its security headers, and /metrics is not reachable through nginx', async () => {
  const home = await stack.api('/');
  const csp = home.headers.get('content-security-policy');
  assert.match(csp, /default-src 'self'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.equal(home.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(home.headers.get('referrer-policy'), 'no-referrer');
  assert.match(home.headers.get('cache-control'), /no-cache/);
  const asset = await stack.api('/css/app.css?v=1');
  assert.match(asset.headers.get('cache-control'), /max-age=604800/);
  for (const path of ['/metrics', '/metrics/', '/metrics?x=1']) {
    const response = await stack.api(path);
    assert.equal(response.status, 404, path);
    assert.doesNotMatch(await response.text(), /http_requests_total/);
  }
  const docs = await stack.api('/docs/');
  assert.equal(docs.status, 200, 'the API docs are proxied');
});

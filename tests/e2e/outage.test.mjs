// The backend goes away and comes back: the page says so within seconds, pauses what needs
// the API, keeps trying, and recovers on its own, without a reload.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startStack } from './harness.mjs';

let stack;

before(async () => {
  stack = await startStack();
  await stack.addBook({ title: 'Still here', author: 'Survivor', year: 2001 });
});

after(async () => stack?.close());

test('a stopped backend shows the banner and disables actions; its return clears both without a reload', async () => {
  const page = await stack.page();
  await page.goto(stack.base);
  await page.locator('#book-rows tr').first().waitFor();
  await page.evaluate(() => { window.__samePage = true; });
  assert.ok(await page.locator('#offline-banner').isHidden());

  const stopped = Date.now();
  await stack.backend.stop();
  await page.locator('#offline-banner').waitFor({ state: 'visible', timeout: 5000 });
  const detectedMs = Date.now() - stopped;
  console.log(`banner shown ${detectedMs} ms after the backend stopped`);
  assert.ok(detectedMs <= 5000);
  assert.match(await page.locator('#offline-banner').textContent(), /unavailable/);
  assert.ok(await page.locator('#add-form button[type=submit]').isDisabled(), 'adding is paused');
  assert.ok(await page.locator('#book-rows button:has-text("Edit")').first().isDisabled(), 'editing is paused');
  assert.ok(await page.locator('#filter-q').isDisabled(), 'searching is paused');
  assert.equal(await page.locator('#book-rows tr').count(), 1, 'what was shown stays shown');
  await stack.screenshot(page, 'backend-unavailable');

  // The impact is contained: the page itself still loads, and API calls get a clear 502.
  const api = await stack.api('/books');
  assert.equal(api.status, 502);
  assert.equal(api.headers.get('content-type'), 'application/problem+json');
  assert.equal((await api.json()).status, 502);
  const fresh = await stack.page({ signedIn: false });
  const home = await fresh.goto(stack.base);
  assert.equal(home.status(), 200);
  await fresh.locator('#offline-banner').waitFor({ state: 'visible', timeout: 5000 });

  const reloaded = page.waitForResponse((r) => r.url().includes('/books?') && r.status() === 200, { timeout: 15000 });
  const restarted = Date.now();
  await stack.backend.start();
  const ready = Date.now();
  await page.locator('#offline-banner').waitFor({ state: 'hidden', timeout: 5000 });
  await reloaded;
  console.log(`banner cleared ${Date.now() - ready} ms after the backend was ready (${ready - restarted} ms start-up)`);
  assert.equal(await page.evaluate(() => window.__samePage), true, 'the page was not reloaded');
  assert.ok(await page.locator('#add-form button[type=submit]').isEnabled(), 'adding is back');
  assert.equal(await page.locator('#book-rows td.title').first().textContent(), 'Still here');
  // Failed requests while the backend was down are expected console noise; exceptions are not.
  assert.deepEqual(page.problems.filter((p) => !/Failed to load resource|502/.test(p)), []);
});

// Signing in and out of the UI: what a signed-out visitor sees, signing in with a token
// (which the page then forgets), changing the catalogue, a session that ends mid-edit, and
// signing out.

import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, test } from 'node:test';
import { startStack } from './harness.mjs';

const require = createRequire(import.meta.url);
let stack;

before(async () => {
  stack = await startStack();
});

after(async () => stack?.close());

async function open(marker, options = {}) {
  const page = await stack.page({ signedIn: false, ...options });
  await page.goto(`${stack.base}/?q=${encodeURIComponent(marker)}`);
  await page.waitForFunction(() => document.querySelector('#list-status').textContent !== 'Loading…');
  return page;
}

async function signIn(page, token) {
  await page.click('#sign-in-open');
  await page.fill('#sign-in-token', token);
  await page.click('#sign-in-submit');
}

async function seriousViolations(page) {
  await page.addScriptTag({ path: require.resolve('axe-core/axe.min.js') });
  const results = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  return results.violations
    .filter((v) => ['serious', 'critical'].includes(v.impact))
    .map((v) => `${v.id}: ${v.help} (${v.nodes.length})`);
}

test('signed out, the catalogue is browsable and every editing control says to sign in', async () => {
  await stack.addBook({ title: 'Signed-out: Emma', author: 'Jane Austen', year: 1815 });
  const page = await open('Signed-out', { bypassCSP: true });
  await page.locator('#book-rows tr').first().waitFor();
  assert.equal(await page.locator('#book-rows td.title').first().textContent(), 'Signed-out: Emma');
  assert.ok(await page.isVisible('#sign-in-open'));
  assert.equal(await page.locator('#add-note').textContent(), 'Browsing only: sign in to add, edit or delete books.');
  for (const control of ['#add-title', '#add-form button[type=submit]', '#book-rows button >> nth=0', '#book-rows button >> nth=1']) {
    assert.ok(await page.isDisabled(control), `${control} is disabled`);
    assert.equal(await page.getAttribute(control, 'title'), 'Sign in to change the catalogue.', control);
  }
  assert.ok(await page.isEnabled('#filter-q'), 'searching needs no sign-in');
  await page.click('#sign-in-open');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'sign-in-token');
  assert.deepEqual(await seriousViolations(page), []);
  await stack.screenshot(page, 'signed-out');
  assert.deepEqual(page.problems, []);
});

test('a wrong token is explained; a good one signs in, is forgotten, and lets the user edit', async () => {
  const token = stack.createToken('ui-editor');
  await stack.addBook({ title: 'Sign-in: Persuasion', author: 'Jane Austen', year: 1817 });
  const page = await open('Sign-in');
  await signIn(page, 'bks_not-a-real-token');
  await page.locator('#sign-in-error').filter({ hasText: 'does not work' }).waitFor();
  assert.ok(await page.isDisabled('#add-title'));

  await page.fill('#sign-in-token', token);
  await page.click('#sign-in-submit');
  await page.locator('#account-status').filter({ hasText: 'Signed in as ui-editor' }).waitFor();
  assert.ok(await page.isHidden('#sign-in-form'));
  assert.ok(await page.isVisible('#sign-out'));
  assert.ok(await page.isHidden('#add-note'));
  // Nothing the page's scripts can reach holds the token: not the field, the DOM, storage or
  // cookies (the session cookie is HttpOnly).
  const reachable = await page.evaluate(() => JSON.stringify({
    field: document.querySelector('#sign-in-token').value,
    html: document.documentElement.outerHTML,
    local: { ...localStorage },
    session: { ...sessionStorage },
    cookie: document.cookie,
  }));
  assert.ok(!reachable.includes(token.slice(4)), 'the token is gone from the page');
  assert.equal(JSON.parse(reachable).cookie, '', 'the session cookie is out of scripts\' reach');

  await page.fill('#add-title', 'Sign-in: Mansfield Park');
  await page.fill('#add-author', 'Jane Austen');
  await page.fill('#add-year', '1814');
  await page.click('#add-form button[type=submit]');
  await page.locator('#book-rows td.title', { hasText: 'Sign-in: Mansfield Park' }).waitFor();

  const row = page.locator('#book-rows tr', { hasText: 'Sign-in: Persuasion' });
  await row.getByRole('button', { name: /Edit/ }).click();
  await page.fill('tr.editing input[name=year]', '1818');
  await page.click('tr.editing button[type=submit]');
  await page.locator('#book-rows tr', { hasText: 'Sign-in: Persuasion' }).locator('td.num', { hasText: '1818' }).waitFor();

  await page.locator('#book-rows tr', { hasText: 'Sign-in: Mansfield Park' }).getByRole('button', { name: /Delete/ }).click();
  await page.click('#delete-dialog button[value=delete]');
  await page.locator('#book-rows td.title', { hasText: 'Sign-in: Mansfield Park' }).waitFor({ state: 'detached' });
  const stored = await (await stack.api('/books?q=sign-in')).json();
  assert.deepEqual(stored.map((b) => [b.title, b.year]), [['Sign-in: Persuasion', 1818]]);
  assert.deepEqual(page.problems.filter((p) => !p.includes('401')), [], 'only the wrong token\'s 401 was logged');
});

test('a read-only token signs in but cannot change anything, and says why', async () => {
  const page = await open('Read-only');
  await signIn(page, stack.createToken('ui-reader', { readOnly: true }));
  await page.locator('#account-status').filter({ hasText: 'Signed in as ui-reader (read-only)' }).waitFor();
  assert.ok(await page.isDisabled('#add-title'));
  assert.match(await page.locator('#add-note').textContent(), /read-only/);
});

test('signing out closes editing again, and the old session no longer works', async () => {
  const page = await open('Sign-out', { signedIn: true });
  await page.locator('#account-status').filter({ hasText: 'Signed in as operator' }).waitFor();
  const [cookie] = await page.context().cookies();
  assert.equal(cookie.name, 'bookstore_session');
  assert.ok(cookie.httpOnly && cookie.sameSite === 'Strict', JSON.stringify(cookie));
  await page.click('#sign-out');
  await page.locator('#sign-in-open').waitFor();
  assert.ok(await page.isDisabled('#add-title'));
  assert.match(await page.locator('#toast').textContent(), /Signed out/);
  const replayed = await stack.api('/books', {
    method: 'POST', token: null, body: JSON.stringify({ title: 'Replay', author: 'A', year: 1 }),
    headers: { Cookie: `${cookie.name}=${cookie.value}`, Origin: stack.base },
  });
  assert.equal(replayed.status, 401);
  assert.deepEqual(page.problems, []);
});

test('a session that ends mid-edit keeps what was typed and asks to sign in again', async () => {
  const short = await startStack({ sessionTtl: '3s' });
  try {
    const book = await short.addBook({ title: 'Expiry: Sanditon', author: 'Jane Austen', year: 1817 });
    const page = await short.page({ signedIn: false });
    await page.goto(short.base);
    await signIn(page, short.createToken('ui-expiring'));
    await page.locator('#account-status').filter({ hasText: 'Signed in' }).waitFor();
    await page.fill('#add-title', 'Expiry: Lady Susan');
    await page.fill('#add-author', 'Jane Austen');
    await page.fill('#add-year', '1871');
    await page.locator('#book-rows tr', { hasText: 'Expiry: Sanditon' }).getByRole('button', { name: /Edit/ }).click();
    await page.fill('tr.editing input[name=author]', 'J. Austen, unfinished');
    await new Promise((resolve) => { setTimeout(resolve, 3500); });

    await page.click('tr.editing button[type=submit]');
    await page.locator('tr.editing [role=alert]').filter({ hasText: 'no longer signed in' }).waitFor();
    assert.equal(await page.inputValue('tr.editing input[name=author]'), 'J. Austen, unfinished', 'the edit is kept');
    assert.equal(await page.inputValue('#add-title'), 'Expiry: Lady Susan', 'so is the add form');
    assert.ok(await page.isVisible('#sign-in-form'));
    assert.match(await page.locator('#sign-in-error').textContent(), /session has ended/);
    await short.screenshot(page, 'session-ended');
    assert.equal((await (await short.api(`/books/${book.id}`)).json()).author, 'Jane Austen', 'nothing was saved');

    await page.fill('#sign-in-token', short.createToken('ui-expiring-again'));
    await page.click('#sign-in-submit');
    await page.locator('#account-status').filter({ hasText: 'Signed in' }).waitFor();
    await page.click('tr.editing button[type=submit]');
    await page.locator('#book-rows td', { hasText: 'J. Austen, unfinished' }).waitFor();
    await page.click('#add-form button[type=submit]');
    await page.locator('#book-rows td.title', { hasText: 'Expiry: Lady Susan' }).waitFor();
    assert.deepEqual(page.problems.filter((p) => !p.includes('401')), []);
  } finally {
    await short.close();
  }
});

test('over HTTPS, signing in sets a Secure __Host- cookie and the user can edit', async () => {
  const secure = await startStack({ https: true });
  try {
    const page = await secure.page({ signedIn: false });
    await page.goto(secure.base);
    assert.ok(await page.evaluate(() => window.isSecureContext), 'Chromium accepted the certificate');
    await signIn(page, secure.createToken('ui-https'));
    await page.locator('#account-status').filter({ hasText: 'Signed in as ui-https' }).waitFor();
    const [cookie] = await page.context().cookies();
    assert.equal(cookie.name, '__Host-bookstore_session');
    assert.ok(cookie.secure && cookie.httpOnly && cookie.sameSite === 'Strict' && cookie.path === '/',
      JSON.stringify(cookie));
    await page.fill('#add-title', 'HTTPS: Emma');
    await page.fill('#add-author', 'Jane Austen');
    await page.fill('#add-year', '1815');
    await page.click('#add-form button[type=submit]');
    await page.locator('#book-rows td.title', { hasText: 'HTTPS: Emma' }).waitFor();
    // The plain-HTTP address sends the browser to HTTPS.
    const plain = await page.context().newPage();
    await plain.goto(`${secure.plainBase}/?q=HTTPS`);
    assert.equal(plain.url(), `${secure.base}/?q=HTTPS`);
    await plain.locator('#book-rows td.title', { hasText: 'HTTPS: Emma' }).waitFor();
    await plain.close();
    assert.deepEqual(page.problems, []);
  } finally {
    await secure.close();
  }
});

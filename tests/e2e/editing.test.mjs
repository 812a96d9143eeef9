// Adding, editing in place (with the 412 path), deleting, and hostile text.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startStack } from './harness.mjs';

let stack;

before(async () => {
  stack = await startStack();
});

after(async () => stack?.close());

// Narrows the catalogue to one unique marker, so each test only sees its own books.
async function open(marker) {
  const page = await stack.page();
  await page.goto(`${stack.base}/?q=${encodeURIComponent(marker)}`);
  await page.waitForFunction(() => document.querySelector('#list-status').textContent !== 'Loading…');
  return page;
}

async function waitForTitles(page, expected) {
  await page.waitForFunction(
    (want) => JSON.stringify([...document.querySelectorAll('#book-rows td.title')].map((td) => td.textContent)) === want,
    JSON.stringify(expected),
  );
}

test('adding a valid book shows it in the list and says so', async () => {
  const page = await open('Add-valid');
  await page.fill('#add-title', '  Add-valid: Middlemarch  ');
  await page.fill('#add-author', 'George Eliot');
  await page.fill('#add-year', '1871');
  await page.fill('#add-genre', 'Novel');
  await page.click('#add-form button[type=submit]');
  await waitForTitles(page, ['Add-valid: Middlemarch']);
  assert.match(await page.locator('#toast').textContent(), /Added “Add-valid: Middlemarch”/);
  assert.equal(await page.inputValue('#add-title'), '', 'the form is cleared');
  const books = await (await stack.api('/books?q=add-valid')).json();
  assert.equal(books[0].title, 'Add-valid: Middlemarch', 'stored trimmed');
  assert.deepEqual(page.problems, []);
});

test('invalid input is explained next to each field before anything is sent', async () => {
  const page = await open('Add-invalid');
  let posted = 0;
  page.on('request', (request) => { if (request.method() === 'POST') posted += 1; });
  await page.fill('#add-title', '   ');
  await page.fill('#add-author', 'é'.repeat(51));
  await page.fill('#add-year', '2101');
  await page.fill('#add-genre', 'g'.repeat(51));
  await page.click('#add-form button[type=submit]');
  assert.equal(await page.locator('#add-title-error').textContent(), 'Title must be 1 to 50 characters.');
  assert.equal(await page.locator('#add-author-error').textContent(), 'Author must be 1 to 50 characters.');
  assert.equal(await page.locator('#add-year-error').textContent(), 'Year must be an integer from -5000 to 2100.');
  assert.equal(await page.locator('#add-genre-error').textContent(), 'Genre must be at most 50 characters, or null.');
  assert.equal(await page.getAttribute('#add-title', 'aria-invalid'), 'true');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'add-title', 'focus moves to the first problem');
  await stack.screenshot(page, 'add-invalid');

  // Fifty characters of "é" are fine: lengths count characters, not bytes.
  await page.fill('#add-title', 'é'.repeat(50));
  await page.fill('#add-author', 'Someone');
  await page.fill('#add-year', '-700');
  await page.fill('#add-genre', '');
  assert.equal(await page.locator('#add-title-error').textContent(), '', 'a corrected field clears as it is typed');
  assert.equal(await page.locator('#add-year-error').textContent(), '');
  assert.equal(posted, 0, 'nothing was sent while the form was invalid');
  assert.deepEqual(page.problems, []);
});

test('a rejection by the server is shown next to the field it names', async () => {
  const page = await open('Server-says-no');
  // The form's own checks pass; on the way, the year is swapped for one the server refuses,
  // so that the real server's problem+json comes back to the page.
  await page.route('**/books', async (route) => {
    const body = JSON.parse(route.request().postData());
    await route.continue({ postData: JSON.stringify({ ...body, year: '1999' }) });
  });
  await page.fill('#add-title', 'Server-says-no');
  await page.fill('#add-author', 'Tester');
  await page.fill('#add-year', '1999');
  const answer = page.waitForResponse((r) => r.url().endsWith('/books') && r.request().method() === 'POST');
  await page.click('#add-form button[type=submit]');
  assert.equal((await answer).status(), 422);
  await page.locator('#add-year-error:not(:empty)').waitFor();
  assert.equal(await page.locator('#add-year-error').textContent(), 'Year must be an integer from -5000 to 2100.');
  assert.equal(await page.locator('#add-title-error').textContent(), '');
  assert.equal(await page.inputValue('#add-title'), 'Server-says-no', 'nothing typed is lost');
  await stack.screenshot(page, 'add-server-rejection');
  // The browser logs the 422 it received; nothing else may go wrong.
  assert.deepEqual(page.problems.filter((p) => !p.includes('422')), []);
});

test('a book is edited in place and saved with If-Match', async () => {
  const book = await stack.addBook({ title: 'Edit-me', author: 'Before', year: 2000 });
  const page = await open('Edit-me');
  await waitForTitles(page, ['Edit-me']);
  const sent = page.waitForRequest((r) => r.method() === 'PUT');
  await page.click('#book-rows button:has-text("Edit")');
  await page.locator('tr.editing input[name=author]').fill('After');
  await page.locator('tr.editing button:has-text("Save")').click();
  assert.match((await sent).headers()['if-match'], /^"\d+\.\d+"$/);
  await page.waitForFunction(() => !document.querySelector('tr.editing'));
  assert.equal(await page.locator('#book-rows td[data-label=Author]').textContent(), 'After');
  const stored = await (await stack.api(`/books/${book.id}`)).json();
  assert.equal(stored.author, 'After');
  assert.deepEqual(page.problems, []);
});

test('saving over a change made elsewhere gives 412, and the latest version can be loaded', async () => {
  const book = await stack.addBook({ title: 'Edit-conflict', author: 'First', year: 2000 });
  const page = await open('Edit-conflict');
  await waitForTitles(page, ['Edit-conflict']);
  await page.click('#book-rows button:has-text("Edit")');
  await page.locator('tr.editing input[name=author]').waitFor();

  // Someone else changes the book behind the page's back.
  const change = await stack.api(`/books/${book.id}`, {
    method: 'PATCH', body: JSON.stringify({ author: 'Someone else' }),
  });
  assert.equal(change.status, 200);

  await page.locator('tr.editing input[name=author]').fill('Mine');
  await page.locator('tr.editing button:has-text("Save")').click();
  const message = page.locator('tr.editing .row-message');
  await message.getByText('Someone else changed this book').waitFor();
  await stack.screenshot(page, 'edit-conflict');
  const stored = await (await stack.api(`/books/${book.id}`)).json();
  assert.equal(stored.author, 'Someone else', 'the other change was not overwritten');

  await message.getByRole('button', { name: 'Load the latest version' }).click();
  await page.waitForFunction(() => document.querySelector('tr.editing input[name=author]')?.value === 'Someone else');
  await page.locator('tr.editing input[name=author]').fill('Mine, knowingly');
  await page.locator('tr.editing button:has-text("Save")').click();
  await page.waitForFunction(() => !document.querySelector('tr.editing'));
  assert.equal((await (await stack.api(`/books/${book.id}`)).json()).author, 'Mine, knowingly');
  assert.deepEqual(page.problems.filter((p) => !p.includes('412')), []);
});

test('deleting asks first; keeping it keeps it, confirming removes it', async () => {
  const book = await stack.addBook({ title: 'Delete-me', author: 'Nobody', year: 1 });
  const page = await open('Delete-me');
  await waitForTitles(page, ['Delete-me']);
  await page.click('#book-rows button:has-text("Delete")');
  await page.locator('#delete-dialog[open]').waitFor();
  assert.equal(await page.locator('#delete-title').textContent(), 'Delete-me');
  await stack.screenshot(page, 'delete-confirm');
  await page.click('#delete-dialog button[value=cancel]');
  assert.equal((await stack.api(`/books/${book.id}`)).status, 200, 'kept');

  await page.click('#book-rows button:has-text("Delete")');
  await page.click('#delete-dialog button[value=delete]');
  await page.locator('#list-empty:not([hidden])').waitFor();
  assert.equal((await stack.api(`/books/${book.id}`)).status, 404, 'deleted');
  assert.deepEqual(page.problems, []);
});

test('a hostile title is shown as text and runs nothing', async () => {
  const hostile = [
    'Hostile <img src=x onerror="window.__pwned=1">',
    'Hostile <script>window.__pwned=2</script>',
    'Hostile "><svg onload=alert(3)>',
  ];
  for (const title of hostile) await stack.addBook({ title, author: '<b>bold</b>', year: 2000 });
  const page = await open('Hostile');
  let dialogs = 0;
  page.on('dialog', async (dialog) => { dialogs += 1; await dialog.dismiss(); });
  await page.waitForFunction(() => document.querySelectorAll('#book-rows tr').length === 3);
  const shown = await page.locator('#book-rows td.title').allTextContents();
  assert.deepEqual(shown.sort(), [...hostile].sort());
  assert.equal(await page.locator('#book-rows img, #book-rows script, #book-rows svg, #book-rows b').count(), 0);
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  assert.equal(dialogs, 0);
  await stack.screenshot(page, 'hostile');
  assert.deepEqual(page.problems, []);
});

// A catalogue past the API's offset cap (10,000): the UI pages by offset while it can, then
// follows the `next` links' cursors, saying which page it shows; and a search that matches
// more than 10,000 books says "10,000+".

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startStack } from './harness.mjs';

let stack;

before(async () => {
  stack = await startStack();
  const books = [];
  for (let i = 1; i <= 10150; i += 1) {
    books.push({ title: `Volume ${String(i).padStart(5, '0')}`, author: 'The Archive', year: 2000, genre: 'Reference' });
  }
  stack.insertBooks(books);
});

after(async () => stack?.close());

const pageInfo = (page) => page.locator('#page-info').textContent();
const firstTitle = (page) => page.locator('#book-rows td.title').first().textContent();

test('past offset 10,000 the next page follows the cursor, and back returns by history', async () => {
  const page = await stack.page();
  await page.goto(`${stack.base}/?limit=100&offset=9900`);
  await page.waitForFunction(() => document.querySelector('#page-info').textContent === 'Page 100 of 102');
  assert.equal(await firstTitle(page), 'Volume 09901');
  await page.click('#page-next');
  await page.waitForFunction(() => document.querySelector('#page-info').textContent === 'Page 101 of 102');
  assert.equal(await firstTitle(page), 'Volume 10001', 'offset 10,000 is the last page by offset');
  assert.match(page.url(), /offset=10000/);
  await page.click('#page-next');
  await page.waitForFunction(() => document.querySelector('#page-info').textContent === 'Page 102 of 102');
  assert.match(page.url(), /cursor=/);
  assert.equal(await firstTitle(page), 'Volume 10101');
  assert.match(await page.locator('#list-status').textContent(), /Showing 10,101–10,150 of 10,150 books/);
  assert.ok(await page.locator('#page-next').isDisabled());
  await page.click('#page-prev');
  await page.waitForFunction(() => document.querySelector('#page-info').textContent === 'Page 101 of 102');
  assert.deepEqual(page.problems, []);
});

test('a search that matches more than 10,000 books says so', async () => {
  const page = await stack.page();
  await page.goto(`${stack.base}/?q=volume`);
  await page.waitForFunction(() => /10,000\+/.test(document.querySelector('#list-status').textContent));
  assert.equal(await pageInfo(page), 'Page 1 of 500+');
  assert.deepEqual(page.problems, []);
});

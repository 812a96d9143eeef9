// Faults at the edge: every answer nginx makes itself is a problem document (and a gateway
// error on a change never says "safe to retry"), and an addition whose answer never came is
// retried by the UI with the same Idempotency-Key, so it is added exactly once.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startStack } from './harness.mjs';

let stack;

before(async () => {
  stack = await startStack();
});

after(async () => stack?.close());

function assertProblem({ status, headers, body }, expected) {
  assert.equal(status, expected, body);
  assert.equal(headers['content-type'], 'application/problem+json', `${expected}: ${body}`);
  const problem = JSON.parse(body);
  assert.equal(problem.status, expected);
  assert.equal(problem.type, 'about:blank');
  return problem;
}

async function raw(pathname, init) {
  const response = await stack.api(pathname, init);
  return { status: response.status, headers: Object.fromEntries(response.headers), body: await response.text() };
}

test("nginx's own 404, 413, 414 and 431 answers are problem documents", async () => {
  assertProblem(await raw('/no/such/page'), 404);
  assertProblem(await raw('/metrics'), 404);
  const huge = JSON.stringify({ title: 'x'.repeat(2 * 1024 * 1024), author: 'A', year: 1 });
  assertProblem(await raw('/books', { method: 'POST', body: huge }), 413);
  assertProblem(await raw(`/books?q=${'x'.repeat(9000)}`), 414);
  assertProblem(await raw('/books', { headers: { 'X-Padding': 'y'.repeat(20000) } }), 431);
});

test('a client sending too many changes gets a 429 problem with Retry-After, and reads go on', async () => {
  const book = JSON.stringify({ title: 'Rate limited', author: 'A', year: 1 });
  const answers = [];
  for (let i = 0; i < 40; i += 1) answers.push(await stack.fromElsewhere('POST', '/books', { body: book }));
  const limited = answers.filter((a) => a.status === 429);
  assert.ok(limited.length > 0, `no 429 in ${answers.map((a) => a.status)}`);
  assert.ok(answers.every((a) => a.status === 201 || a.status === 429), answers.map((a) => a.status).join(' '));
  assertProblem(limited[0], 429);
  assert.equal(limited[0].headers['retry-after'], '1');
  const read = await stack.fromElsewhere('GET', '/books?limit=1');
  assert.equal(read.status, 200, 'reads have their own, wider limit');
});

test('with the backend gone, a read is "safe to retry" and a change is "may or may not have been saved"', async () => {
  await stack.backend.stop();
  try {
    const read = assertProblem(await raw('/books'), 502);
    assert.match(read.detail, /safe to retry/);
    const write = assertProblem(await raw('/books', { method: 'POST', body: '{}' }), 502);
    assert.doesNotMatch(write.detail, /safe to retry shortly/);
    assert.match(write.detail, /may or may not have been saved/);
  } finally {
    await stack.backend.start();
  }
});

test('an addition the service never answered is retried with the same key and added exactly once', async () => {
  const title = `Unanswered ${Date.now()}`;
  const page = await stack.page();
  const keys = [];
  page.on('request', (request) => {
    if (request.method() === 'POST') keys.push(request.headers()['idempotency-key']);
  });
  await page.goto(stack.base);
  await page.locator('#book-rows, #list-empty').first().waitFor({ state: 'attached' });
  await page.fill('#add-title', title);
  await page.fill('#add-author', 'Patience');
  await page.fill('#add-year', '2024');

  // The backend hangs: nginx waits its 20 s for an answer, then gives up with a 504.
  stack.backend.freeze();
  let frozen = true;
  try {
    await page.click('#add-form button[type=submit]');
    await page.waitForFunction(() => /checking again/.test(document.querySelector('#add-form-error').textContent),
      null, { timeout: 40000 });
    const note = await page.locator('#add-form-error').textContent();
    assert.doesNotMatch(note, /not added/, 'it does not claim the book was not added');
    await stack.screenshot(page, 'add-unconfirmed');
    stack.backend.thaw();
    frozen = false;
    await page.locator('#toast').filter({ hasText: `Added “${title}”` }).waitFor({ timeout: 40000 });
  } finally {
    if (frozen) stack.backend.thaw();
  }

  assert.ok(keys.length >= 2, `retried: ${keys.length} POSTs`);
  assert.ok(keys.every((key) => key && key === keys[0]), `one key for every try: ${keys}`);
  const found = await (await stack.api(`/books?q=${encodeURIComponent(title)}`)).json();
  assert.equal(found.length, 1, 'added exactly once');
  assert.equal(await page.inputValue('#add-title'), '', 'the form is cleared once it is confirmed');

  // A new addition of the same book is a new intent: a new key, a second book.
  await page.fill('#add-title', title);
  await page.fill('#add-author', 'Patience');
  await page.fill('#add-year', '2024');
  await page.click('#add-form button[type=submit]');
  await page.locator('#toast').filter({ hasText: `Added “${title}”` }).waitFor();
  const twice = await (await stack.api(`/books?q=${encodeURIComponent(title)}`)).json();
  assert.equal(twice.length, 2);
  assert.notEqual(keys.at(-1), keys[0]);
});

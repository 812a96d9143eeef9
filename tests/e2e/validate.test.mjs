// The browser's field rules (frontend/js/validate.js) against the server's: every tricky
// input must get the same verdict from both.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { checkBook, checkField, length, trim } from '../../frontend/js/validate.js';
import { startBackend, withCredential } from './harness.mjs';

let backend;

before(async () => {
  backend = await startBackend();
});

after(async () => backend?.stop());

test('trimming removes exactly the invisible characters the server trims', () => {
  assert.equal(trim('\t Dune \n\u3000'), 'Dune');
  assert.equal(trim('\u00a0Dune\u2029'), 'Dune');
  assert.equal(trim('\ufeffDune\u200b'), 'Dune', 'the BOM and zero-width spaces show nothing');
  assert.equal(trim('\u0000Dune\u{e007f}'), 'Dune', 'nor do controls or tag characters');
  assert.equal(trim('Zero\u200bwidth'), 'Zero\u200bwidth', 'inside the text they stay');
  assert.equal(trim('\ufffcDune'), '\ufffcDune', 'the object replacement character is visible');
});

test('lengths are counted in characters, not UTF-16 units or bytes', () => {
  assert.equal(length('é'.repeat(50)), 50);
  assert.equal(length('📚'.repeat(50)), 50);
  assert.equal(checkField('title', '📚'.repeat(50)), null);
  assert.equal(checkField('title', '📚'.repeat(51)), 'must be 1 to 50 characters');
});

test('years are whole numbers from -5000 to 2100', () => {
  assert.equal(checkField('year', '-5000'), null);
  assert.equal(checkField('year', '2100'), null);
  assert.equal(checkField('year', '2101'), 'must be an integer from -5000 to 2100');
  assert.equal(checkField('year', '19.5'), 'must be an integer from -5000 to 2100');
  assert.equal(checkField('year', ''), 'is required');
  assert.equal(checkField('year', '', true), 'must be an integer from -5000 to 2100', 'input the browser could not read');
});

test('a blank genre is no genre', () => {
  assert.deepEqual(checkBook({ title: 'T', author: 'A', year: '1', genre: '   ' }), {
    book: { title: 'T', author: 'A', year: 1, genre: null },
  });
});

test('the browser and the server agree on every tricky input', async () => {
  const texts = ['', ' ', 'a', 'é'.repeat(50), 'é'.repeat(51), ' '.repeat(3) + 'x'.repeat(50) + '\t', '\ufeff' + 'x'.repeat(50),
    '\u3000x\u3000', '\u200b', '\u200d\u2060', '\u{e0041}x', '\u3164', '\u0000', '\u001c', '\ufffc',
    '📚'.repeat(50), '📚'.repeat(51), 'a\u0000b', 'two\nlines', 'tab\tinside', '<b>x</b>'];
  const years = ['0', '-5000', '-5001', '2100', '2101', '1965', '1e3', '12.0', ' 7 '];
  const cases = [
    ...texts.map((t) => ({ title: t, author: 'A', year: '2000', genre: '' })),
    ...texts.map((t) => ({ title: 'T', author: 'A', year: '2000', genre: t })),
    ...years.map((y) => ({ title: 'T', author: 'A', year: y, genre: '' })),
  ];
  for (const fields of cases) {
    const client = checkBook(fields);
    // What the form would send if it did not check: the raw strings, the year as a number.
    const body = { title: fields.title, author: fields.author, year: Number(fields.year), genre: fields.genre };
    const response = await fetch(`${backend.url}/books`, {
      method: 'POST', headers: withCredential('POST', { 'Content-Type': 'application/json' }), body: JSON.stringify(body),
    });
    const serverAccepts = response.status === 201;
    const yearIsInteger = /^\s*[+-]?\d+\s*$/.test(fields.year);
    if (!yearIsInteger) {
      // The form refuses what is not written as an integer ("1e3", "12.0"); JSON would carry
      // it as a number the server may accept, so only the client's refusal is checked here.
      assert.ok(client.errors?.year, JSON.stringify(fields));
      continue;
    }
    assert.equal(!client.errors, serverAccepts, `${JSON.stringify(fields)}: server said ${response.status}`);
    if (serverAccepts) {
      const stored = await response.json();
      assert.equal(stored.title, client.book.title);
      assert.equal(stored.genre, client.book.genre);
    }
  }
});

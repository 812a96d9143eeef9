// The book rules, mirrored from the server (backend/src/domain/book.rs) so the form can say
// what is wrong before anything is sent. The server stays the judge: its problem+json errors
// are shown in the same places.

export const TEXT_MAX = 50;
export const YEAR_MIN = -5000;
export const YEAR_MAX = 2100;

export const MESSAGES = {
  text: 'must be 1 to 50 characters',
  control: 'must not contain control characters (such as line breaks or NUL)',
  genre: 'must be at most 50 characters, or null',
  year: 'must be an integer from -5000 to 2100',
  required: 'is required',
};

// Exactly the characters the server trims from both ends (is_invisible in
// backend/src/domain/book.rs): whitespace, control characters, and default-ignorable code
// points (zero-width spaces and joiners, the byte-order mark...), so that a title made only
// of them is blank here as there.
const INVISIBLE = '\\s\\p{Cc}\\p{Default_Ignorable_Code_Point}';
const EDGES = new RegExp(`^[${INVISIBLE}]+|[${INVISIBLE}]+$`, 'gu');

export function trim(text) {
  return text.replace(EDGES, '');
}

// Length in Unicode scalar values, as the server counts: "é" and "📚" are one each.
export function length(text) {
  return [...text].length;
}

// Control characters inside the text (the ends are trimmed): refused by the server.
const CONTROL = /\p{Cc}/u;

function text(raw) {
  const value = trim(raw);
  if (CONTROL.test(value)) return { error: MESSAGES.control };
  const n = length(value);
  return n >= 1 && n <= TEXT_MAX ? { value } : { error: MESSAGES.text };
}

function genre(raw) {
  const value = trim(raw ?? '');
  if (value === '') return { value: null };
  if (CONTROL.test(value)) return { error: MESSAGES.control };
  return length(value) <= TEXT_MAX ? { value } : { error: MESSAGES.genre };
}

// `raw` is what the year input holds: a string, with `bad` set when the browser could not
// read it as a number at all.
function year(raw, bad = false) {
  const value = String(raw ?? '').trim();
  if (value === '' && !bad) return { error: MESSAGES.required };
  if (bad || !/^[+-]?\d+$/.test(value)) return { error: MESSAGES.year };
  const n = Number(value);
  return n >= YEAR_MIN && n <= YEAR_MAX ? { value: n } : { error: MESSAGES.year };
}

// Checks a whole form's worth of fields: { title, author, year, yearBad, genre }.
// Returns { book } ready to send, or { errors } keyed by field.
export function checkBook(fields) {
  const results = {
    title: text(fields.title ?? ''),
    author: text(fields.author ?? ''),
    year: year(fields.year, fields.yearBad),
    genre: genre(fields.genre),
  };
  const errors = {};
  const book = {};
  for (const [field, result] of Object.entries(results)) {
    if ('error' in result) errors[field] = result.error;
    else book[field] = result.value;
  }
  return Object.keys(errors).length ? { errors } : { book };
}

// One field at a time, for messages while the user types.
export function checkField(field, raw, bad = false) {
  const result = field === 'year' ? year(raw, bad) : field === 'genre' ? genre(raw) : text(raw ?? '');
  return result.error ?? null;
}

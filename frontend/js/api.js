// Talking to the bookstore API: relative URLs (the same files work behind nginx and when the
// backend serves them), problem+json errors, and telling apart "the service is down (nothing
// happened)", "the request was refused", and, for changes, "nobody knows whether it happened".

export class ApiError extends Error {
  constructor(status, problem, retryAfter = null) {
    super(problem?.detail || `HTTP ${status}`);
    this.status = status;
    this.problem = problem ?? {};
    // Seconds to wait, from a 429's (or 503's) Retry-After.
    this.retryAfter = retryAfter === null ? null : Number(retryAfter);
  }

  // Field errors as { field: message }.
  get fieldErrors() {
    const out = {};
    for (const { field, message } of this.problem.errors ?? []) {
      if (!(field in out)) out[field] = message;
    }
    return out;
  }
}

// The API cannot be reached: a network failure, or a gateway saying the backend is down.
export class Unavailable extends Error {
  constructor(reason) {
    super(reason);
    this.name = 'Unavailable';
  }
}

// A change was sent, but no answer says whether it was made: the network failed or timed
// out after sending it, or a gateway gave up waiting. Never assume either way; a POST can be
// retried with the same Idempotency-Key, which cannot create a second book.
export class OutcomeUnknown extends Error {
  constructor(reason) {
    super(reason);
    this.name = 'OutcomeUnknown';
  }
}

const GATEWAY_DOWN = new Set([502, 503, 504]);
// Reads give up quickly; changes wait longer than the server's own time limit (10 s) plus a
// commit's wait for the disk, and longer than nginx waits for the backend (20 s), so that
// they get the server's answer whenever there is one.
const READ_TIMEOUT_MS = 8000;
const CHANGE_TIMEOUT_MS = 25000;

async function request(method, path, { body, headers = {}, contentType = 'application/json' } = {}) {
  const init = { method, headers: { Accept: 'application/json', ...headers } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = contentType;
  }
  const change = !['GET', 'HEAD'].includes(method);
  let response;
  try {
    const timeout = change ? CHANGE_TIMEOUT_MS : READ_TIMEOUT_MS;
    response = await fetch(path, { ...init, signal: AbortSignal.timeout(timeout) });
  } catch (error) {
    const reason = error?.name === 'TimeoutError' ? 'the request timed out' : 'the network request failed';
    // A change may have reached the server before the failure.
    throw change ? new OutcomeUnknown(reason) : new Unavailable(reason);
  }
  if (GATEWAY_DOWN.has(response.status)) {
    // Only a 503 with Retry-After says nothing was written; anything else from a gateway
    // leaves a change's outcome unknown.
    const nothingWritten = response.status === 503 && response.headers.has('Retry-After');
    if (change && !nothingWritten) throw new OutcomeUnknown(`the service answered ${response.status}`);
    throw new Unavailable(`the service answered ${response.status}`);
  }
  if (!response.ok && response.status !== 304) {
    let problem = null;
    try {
      problem = await response.json();
    } catch {
      problem = null;
    }
    throw new ApiError(response.status, problem, response.headers.get('Retry-After'));
  }
  return response;
}

// Parses a Link header into { next: url, prev: url }.
export function parseLinks(header) {
  const links = {};
  for (const part of (header ?? '').split(',')) {
    const match = part.match(/<([^>]*)>\s*;\s*rel="?([a-z]+)"?/i);
    if (match) links[match[2]] = match[1];
  }
  return links;
}

// A page of books: { books, total, atLeast, links } (`atLeast`: the count stopped at 10,000).
export async function listBooks(params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') query.set(key, value);
  }
  const response = await request('GET', `/books?${query}`);
  return {
    books: await response.json(),
    total: Number(response.headers.get('X-Total-Count') ?? 0),
    atLeast: response.headers.get('X-Total-Count-Relation') === 'gte',
    links: parseLinks(response.headers.get('Link')),
  };
}

// One book and its ETag: { book, etag }.
export async function getBook(id) {
  const response = await request('GET', `/books/${encodeURIComponent(id)}`);
  return { book: await response.json(), etag: response.headers.get('ETag') };
}

// Creates a book at most once per `key` (an Idempotency-Key): sending the same book with the
// same key again returns the first answer instead of adding it twice. A 409 means the first
// request with the key is still running.
export async function createBook(book, key) {
  const response = await request('POST', '/books', { body: book, headers: { 'Idempotency-Key': key } });
  return { book: await response.json(), etag: response.headers.get('ETag') };
}

// A new Idempotency-Key, for one intended addition: 128 random bits in hex.
// (crypto.randomUUID exists only on HTTPS and localhost pages; getRandomValues everywhere.)
export function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

// Replaces a book only if it is still at version `etag` (a 412 ApiError otherwise).
export async function replaceBook(id, book, etag) {
  const headers = etag ? { 'If-Match': etag } : {};
  const response = await request('PUT', `/books/${encodeURIComponent(id)}`, { body: book, headers });
  return { book: await response.json(), etag: response.headers.get('ETag') };
}

// Deletes a book only if it is still at version `etag` (a 412 ApiError otherwise).
export async function deleteBook(id, etag) {
  const headers = etag ? { 'If-Match': etag } : {};
  await request('DELETE', `/books/${encodeURIComponent(id)}`, { headers });
}

// Whether the service is up and its database answers.
export async function ready() {
  try {
    await request('GET', '/readyz');
    return true;
  } catch {
    return false;
  }
}

// Who is signed in: { authenticated, public_reads, name, scope ('write' or 'read'), expires_at }.
export async function session() {
  const response = await request('GET', '/session');
  return response.json();
}

// Exchanges an API token for a session: the answer sets an HttpOnly cookie, which the browser
// sends from then on and which no page script can read. The caller forgets the token.
export async function signIn(token) {
  const response = await request('POST', '/session', { body: { token } });
  return response.json();
}

// Ends the session and clears its cookie.
export async function signOut() {
  await request('DELETE', '/session');
}

// Talking to the bookstore API: relative URLs (the same files work behind nginx and when the
// backend serves them), problem+json errors, and telling "the service is down" apart from
// "the request was refused".

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || `HTTP ${status}`);
    this.status = status;
    this.problem = problem ?? {};
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

const GATEWAY_DOWN = new Set([502, 503, 504]);
const TIMEOUT_MS = 8000;

async function request(method, path, { body, headers = {}, contentType = 'application/json' } = {}) {
  const init = { method, headers: { Accept: 'application/json', ...headers } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = contentType;
  }
  let response;
  try {
    response = await fetch(path, { ...init, signal: AbortSignal.timeout(TIMEOUT_MS) });
  } catch (error) {
    throw new Unavailable(error?.name === 'TimeoutError' ? 'the request timed out' : 'the network request failed');
  }
  if (GATEWAY_DOWN.has(response.status)) {
    throw new Unavailable(`the service answered ${response.status}`);
  }
  if (!response.ok && response.status !== 304) {
    let problem = null;
    try {
      problem = await response.json();
    } catch {
      problem = null;
    }
    throw new ApiError(response.status, problem);
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

// A page of books: { books, total, links }.
export async function listBooks(params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') query.set(key, value);
  }
  const response = await request('GET', `/books?${query}`);
  return {
    books: await response.json(),
    total: Number(response.headers.get('X-Total-Count') ?? 0),
    links: parseLinks(response.headers.get('Link')),
  };
}

// One book and its ETag: { book, etag }.
export async function getBook(id) {
  const response = await request('GET', `/books/${encodeURIComponent(id)}`);
  return { book: await response.json(), etag: response.headers.get('ETag') };
}

export async function createBook(book) {
  const response = await request('POST', '/books', { body: book });
  return { book: await response.json(), etag: response.headers.get('ETag') };
}

// Replaces a book only if it is still at version `etag` (a 412 ApiError otherwise).
export async function replaceBook(id, book, etag) {
  const headers = etag ? { 'If-Match': etag } : {};
  const response = await request('PUT', `/books/${encodeURIComponent(id)}`, { body: book, headers });
  return { book: await response.json(), etag: response.headers.get('ETag') };
}

export async function deleteBook(id) {
  await request('DELETE', `/books/${encodeURIComponent(id)}`);
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

// The page: the catalogue (state kept in the URL), signing in, the add form, editing in
// place, deleting, and what happens when the service goes away and comes back. User text
// only ever reaches the page through textContent. The API token typed to sign in is sent
// once and forgotten: the session lives in an HttpOnly cookie no script can read.

import * as api from './api.js?v=1';
import { checkBook, checkField } from './validate.js?v=1';

const $ = (id) => document.getElementById(id);
const HEALTH_EVERY_MS = 2000;
const SEARCH_DELAY_MS = 300;
// An addition whose outcome is unknown is retried (with the same key) this many times, this
// many milliseconds apart at first, each pause longer than the last.
const ADD_RETRIES = 5;
const ADD_RETRY_MS = 1500;
const DEFAULTS = { q: '', genre: '', sort: 'title', limit: '20', offset: '0', cursor: '', page: '' };
// The first page of a listing: what a change of filter, sort or page size goes back to.
const FIRST_PAGE = { offset: '0', cursor: '', page: '' };
// The deepest page the API serves by offset; past it the UI follows `next` links' cursors.
const MAX_OFFSET = 10000;

const state = {
  view: { ...DEFAULTS },
  online: true,
  loading: null, // the AbortController of the listing in flight
  genres: new Set(),
  toastTimer: 0,
  // The addition in progress: its Idempotency-Key stays the same while the form holds the
  // same book, so no retry (automatic, or the user pressing Add again) can add it twice.
  adding: { key: null, body: null },
  // Who is signed in (GET /session); until it is known, nobody.
  session: { authenticated: false, public_reads: true },
};

const SIGNED_OUT_NOTE = 'Browsing only: sign in to add, edit or delete books.';
const READ_ONLY_NOTE = 'Your token is read-only: it cannot add, edit or delete books.';

// Whether this page may change the catalogue now.
function canWrite() {
  return state.online && state.session.authenticated && state.session.scope === 'write';
}

// ---------------------------------------------------------------------------------------
// Small DOM helpers

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children) node.append(child);
  return node;
}

function toast(message) {
  const box = $('toast');
  box.textContent = message;
  clearTimeout(state.toastTimer);
  state.toastTimer = setTimeout(() => { box.textContent = ''; }, 4000);
}

function formatYear(year) {
  return year < 0 ? `${-year} BCE` : String(year);
}

// Shows (or clears) the message of one field and marks the input.
function showFieldError(input, message) {
  const target = document.getElementById(input.getAttribute('aria-describedby'));
  if (target) target.textContent = message ? capitalise(input, message) : '';
  input.setAttribute('aria-invalid', message ? 'true' : 'false');
}

function capitalise(input, message) {
  const name = input.dataset.label ?? input.name;
  return `${name.charAt(0).toUpperCase()}${name.slice(1)} ${message}.`;
}

// ---------------------------------------------------------------------------------------
// The view state, kept in the URL so that a reload or a shared link shows the same page

function readUrl() {
  const params = new URLSearchParams(location.search);
  const view = { ...DEFAULTS };
  for (const key of Object.keys(DEFAULTS)) {
    if (params.has(key)) view[key] = params.get(key);
  }
  if (!['10', '20', '50', '100'].includes(view.limit)) view.limit = DEFAULTS.limit;
  if (!/^\d+$/.test(view.offset) || Number(view.offset) > MAX_OFFSET) view.offset = '0';
  // A page reached by cursor carries its number (the API knows the cursor, not the number).
  if (!view.cursor || !/^\d+$/.test(view.page)) Object.assign(view, { cursor: '', page: '' });
  if (![...$('filter-sort').options].some((o) => o.value === view.sort)) view.sort = DEFAULTS.sort;
  return view;
}

function writeUrl(view, { push = false } = {}) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(view)) {
    if (value !== DEFAULTS[key] && value !== '') params.set(key, value);
  }
  const query = params.toString();
  const url = `${location.pathname}${query ? `?${query}` : ''}`;
  if (url !== `${location.pathname}${location.search}`) {
    history[push ? 'pushState' : 'replaceState'](null, '', url);
  }
}

function showViewInControls(view) {
  $('filter-q').value = view.q;
  $('filter-genre').value = view.genre;
  $('filter-sort').value = view.sort;
  $('filter-limit').value = view.limit;
}

function navigate(changes, options) {
  state.view = { ...state.view, ...changes };
  writeUrl(state.view, options);
  loadBooks();
}

// ---------------------------------------------------------------------------------------
// The catalogue

async function loadBooks() {
  state.loading?.abort();
  const controller = new AbortController();
  state.loading = controller;
  const table = document.querySelector('table.books');
  table.setAttribute('aria-busy', 'true');
  $('list-status').textContent = 'Loading…';
  $('list-error').hidden = true;
  try {
    const page = await api.listBooks({
      q: state.view.q,
      genre: state.view.genre,
      sort: state.view.sort,
      limit: state.view.limit,
      ...(state.view.cursor ? { cursor: state.view.cursor } : { offset: state.view.offset }),
    });
    if (controller.signal.aborted) return;
    renderPage(page);
  } catch (error) {
    if (controller.signal.aborted) return;
    if (error instanceof api.Unavailable) {
      goOffline();
      $('list-status').textContent = 'The catalogue cannot be loaded while the service is unavailable.';
    } else if (error.status === 401) {
      // Reading needs a credential here (BOOKSTORE_PUBLIC_READS=false), or the session ended.
      setSession({ authenticated: false, public_reads: false });
      showListError(new Error('this catalogue is not public: sign in to see it'));
      openSignIn();
    } else {
      showListError(error);
    }
  } finally {
    if (state.loading === controller) {
      state.loading = null;
      table.setAttribute('aria-busy', 'false');
    }
  }
}

function showListError(error) {
  $('book-rows').replaceChildren();
  $('list-empty').hidden = true;
  $('list-error-text').textContent = `The catalogue could not be loaded: ${error.message}`;
  $('list-error').hidden = false;
  $('list-status').textContent = '';
}

function renderPage({ books, total, atLeast, links }) {
  const limit = Number(state.view.limit);
  const page = state.view.cursor ? Number(state.view.page) : Math.floor(Number(state.view.offset) / limit) + 1;
  const offset = (page - 1) * limit;
  if (books.length === 0 && !state.view.cursor && offset > 0 && total > 0 && !atLeast) {
    // Past the end (say, after deletions): go to the last page instead.
    navigate({ offset: String(Math.max(0, Math.floor((total - 1) / limit) * limit)) });
    return;
  }
  $('book-rows').replaceChildren(...books.map(bookRow));
  for (const book of books) {
    if (book.genre) state.genres.add(book.genre);
  }
  $('genre-options').replaceChildren(...[...state.genres].sort().map((g) => el('option', { value: g })));

  const filtered = state.view.q || state.view.genre;
  $('list-empty').hidden = books.length > 0;
  $('list-empty').textContent = filtered
    ? 'No books match this search.'
    : 'The catalogue is empty. Add the first book with the form.';
  // A search that matches more than 10,000 books is counted to 10,000 ("at least").
  const n = (number) => number.toLocaleString('en');
  const count = `${n(total)}${atLeast ? '+' : ''}`;
  $('list-status').textContent = books.length
    ? `Showing ${n(offset + 1)}–${n(offset + books.length)} of ${count} ${total === 1 && !atLeast ? 'book' : 'books'}`
    : '';

  const pages = Math.max(1, Math.ceil(total / limit));
  $('page-info').textContent = `Page ${n(page)} of ${n(pages)}${atLeast ? '+' : ''}`;
  // A page reached by cursor has no `prev` link: going back is the browser's history.
  $('page-prev').dataset.href = state.view.cursor ? 'back' : links.prev ?? '';
  $('page-next').dataset.href = links.next ?? '';
  updateControls();
}

function bookRow(book) {
  const genre = book.genre
    ? el('td', { 'data-label': 'Genre', text: book.genre })
    : el('td', { 'data-label': 'Genre', class: 'none', text: '—' });
  const row = el('tr', { 'data-id': String(book.id) },
    el('td', { class: 'title', text: book.title }),
    el('td', { 'data-label': 'Author', text: book.author }),
    el('td', { class: 'num', 'data-label': 'Year', text: formatYear(book.year) }),
    genre,
    el('td', { class: 'actions' },
      writeControl(el('button', {
        type: 'button', class: 'link', 'data-needs-write': true,
        'aria-label': `Edit “${book.title}”`, text: 'Edit', onclick: () => startEdit(row, book),
      })),
      writeControl(el('button', {
        type: 'button', class: 'link', 'data-needs-write': true,
        'aria-label': `Delete “${book.title}”`, text: 'Delete', onclick: () => confirmDelete(book),
      }))));
  return row;
}

function goToLink(button) {
  const href = button.dataset.href;
  if (!href) return;
  if (href === 'back') {
    history.back();
    return;
  }
  const params = new URL(href, location.origin).searchParams;
  const limit = Number(state.view.limit);
  if (!params.has('cursor')) {
    navigate({ ...FIRST_PAGE, offset: params.get('offset') ?? '0' }, { push: true });
  } else if (!state.view.cursor && Number(state.view.offset) + limit <= MAX_OFFSET) {
    // `next` is a keyset link (the cursor of the last book shown); the UI pages by offset
    // while it can, so that it can say which page this is: the next by offset is the same.
    navigate({ offset: String(Number(state.view.offset) + limit) }, { push: true });
  } else {
    const page = state.view.cursor ? Number(state.view.page) : Math.floor(Number(state.view.offset) / limit) + 1;
    navigate({ offset: '0', cursor: params.get('cursor'), page: String(page + 1) }, { push: true });
  }
  $('catalogue').focus();
}

// ---------------------------------------------------------------------------------------
// Adding

function formFields(form) {
  const year = form.elements.year;
  return {
    title: form.elements.title.value,
    author: form.elements.author.value,
    year: year.value,
    yearBad: year.validity.badInput,
    genre: form.elements.genre.value,
  };
}

function validateInput(input) {
  const bad = input.validity?.badInput ?? false;
  showFieldError(input, checkField(input.name, input.value, bad));
}

function showServerErrors(form, error, formError) {
  const fields = error.fieldErrors;
  let shown = false;
  for (const [field, message] of Object.entries(fields)) {
    const input = form.elements[field];
    if (input) {
      showFieldError(input, message);
      shown = true;
    }
  }
  const unplaced = Object.entries(fields).filter(([field]) => !form.elements[field]);
  formError.textContent = unplaced.length
    ? unplaced.map(([field, message]) => `${field} ${message}`).join('; ')
    : shown ? '' : error.message;
  const firstInvalid = form.querySelector('[aria-invalid="true"]');
  firstInvalid?.focus();
}

// The key for adding `book`: the same as last time while it is the same book.
function additionKey(book) {
  const body = JSON.stringify(book);
  if (state.adding.body !== body) state.adding = { key: api.newKey(), body };
  return state.adding.key;
}

const pause = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

// Sends an addition, and while its outcome is unknown (no answer, or a gateway error) or its
// first try is still running (409), asks again with the same key: the server answers a
// repeat with the original result, so this settles what happened without a duplicate.
async function addWithRetries(book, key, say) {
  let unknown = false;
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await api.createBook(book, key);
    } catch (error) {
      const stillRunning = error instanceof api.ApiError && error.status === 409;
      // "Unavailable" says this try wrote nothing, not what an earlier try did.
      const unsettled = error instanceof api.OutcomeUnknown || stillRunning || (unknown && error instanceof api.Unavailable);
      if (!unsettled) throw error;
      unknown = true;
      if (attempt > ADD_RETRIES) throw new api.OutcomeUnknown(error.message);
      say(`The service has not confirmed the addition yet; checking again (${attempt} of ${ADD_RETRIES})…`);
      await pause(ADD_RETRY_MS * attempt);
    }
  }
}

async function addBook(event) {
  event.preventDefault();
  const form = event.currentTarget;
  $('add-form-error').textContent = '';
  const checked = checkBook(formFields(form));
  for (const input of form.querySelectorAll('input')) {
    showFieldError(input, checked.errors?.[input.name] ?? null);
  }
  if (checked.errors) {
    form.querySelector('[aria-invalid="true"]')?.focus();
    return;
  }
  const submit = form.querySelector('button[type="submit"]');
  submit.disabled = true;
  const key = additionKey(checked.book);
  try {
    const { book } = await addWithRetries(checked.book, key, (note) => { $('add-form-error').textContent = note; });
    state.adding = { key: null, body: null };
    $('add-form-error').textContent = '';
    form.reset();
    for (const input of form.querySelectorAll('input')) showFieldError(input, null);
    toast(`Added “${book.title}”.`);
    loadBooks();
  } catch (error) {
    if (error instanceof api.OutcomeUnknown) {
      $('add-form-error').textContent = `The service did not confirm whether “${checked.book.title}” was added. `
        + 'Your entry is kept: press Add book again when the service is back; it cannot be added twice.';
    } else if (error instanceof api.Unavailable) {
      goOffline();
      $('add-form-error').textContent = 'The service is unavailable; the book was not added. Try again when it is back.';
    } else if (error.status === 401) {
      sessionEnded();
      $('add-form-error').textContent = 'You are no longer signed in, so the book was not added. '
        + 'Your entry is kept: sign in again, then press Add book.';
    } else if (refusedChange(error)) {
      $('add-form-error').textContent = refusedChange(error);
    } else if (error instanceof api.ApiError) {
      showServerErrors(form, error, $('add-form-error'));
    } else {
      $('add-form-error').textContent = String(error);
    }
  } finally {
    submit.disabled = !canWrite();
  }
}

// ---------------------------------------------------------------------------------------
// Editing in place, with If-Match so that nobody's change is silently overwritten

async function startEdit(row, listed) {
  let current;
  try {
    current = await api.getBook(listed.id);
  } catch (error) {
    if (error instanceof api.Unavailable) goOffline();
    else if (error.status === 404) {
      toast(`“${listed.title}” was deleted meanwhile.`);
      loadBooks();
    } else toast(`Cannot edit: ${error.message}`);
    return;
  }
  const editor = editRow(current.book, current.etag);
  row.replaceWith(editor);
  editor.querySelector('input').focus();
}

function editRow(book, etag) {
  const id = `edit-${book.id}`;
  const field = (name, label, value, extra = {}) => {
    const input = el('input', {
      id: `${id}-${name}`, name, value: value ?? '', 'data-label': name,
      'aria-describedby': `${id}-${name}-error`, 'data-needs-api': true, autocomplete: 'off', ...extra,
    });
    input.addEventListener('input', () => validateInput(input));
    return el('div', { class: 'field' },
      el('label', { for: input.id, text: label }), input,
      el('p', { class: 'field-error', id: `${id}-${name}-error` }));
  };
  const message = el('div', { class: 'row-message', role: 'alert' });
  const cancel = () => row.replaceWith(bookRow(book));
  const form = el('form', { class: 'edit-form', novalidate: true, 'aria-label': `Edit “${book.title}”` },
    field('title', 'Title', book.title),
    field('author', 'Author', book.author),
    field('year', 'Year', String(book.year), { type: 'number', step: '1', inputmode: 'numeric' }),
    field('genre', 'Genre', book.genre, { list: 'genre-options' }),
    el('div', { class: 'edit-actions' },
      writeControl(el('button', { type: 'submit', class: 'primary', 'data-needs-write': true, text: 'Save' })),
      el('button', { type: 'button', text: 'Cancel', onclick: cancel })),
    message);
  const row = el('tr', { class: 'editing', 'data-id': String(book.id) }, el('td', { colspan: '5' }, form));
  row.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') cancel();
  });
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    saveEdit(row, form, book, etag, message);
  });
  return row;
}

async function saveEdit(row, form, book, etag, message) {
  message.replaceChildren();
  const checked = checkBook(formFields(form));
  for (const input of form.elements) {
    if (input.tagName === 'INPUT') showFieldError(input, checked.errors?.[input.name] ?? null);
  }
  if (checked.errors) {
    row.querySelector('[aria-invalid="true"]')?.focus();
    return;
  }
  try {
    const { book: saved } = await api.replaceBook(book.id, checked.book, etag);
    row.replaceWith(bookRow(saved));
    toast(`Saved “${saved.title}”.`);
  } catch (error) {
    if (error instanceof api.OutcomeUnknown) {
      message.textContent = 'The service did not confirm whether your changes were saved. Your edits are kept; '
        + 'when the service is back, save again: if they were saved, you will be told the book has changed.';
    } else if (error instanceof api.Unavailable) {
      goOffline();
      message.textContent = 'The service is unavailable; nothing was saved.';
    } else if (error.status === 401) {
      sessionEnded();
      message.textContent = 'You are no longer signed in, so nothing was saved. Your edits are kept: '
        + 'sign in again, then press Save.';
    } else if (refusedChange(error)) {
      message.textContent = refusedChange(error);
    } else if (error.status === 412) {
      message.append(
        'Someone else changed this book since you opened it; your changes were not saved.',
        el('button', {
          type: 'button', class: 'link', text: 'Load the latest version',
          onclick: async () => {
            try {
              const latest = await api.getBook(book.id);
              const fresh = editRow(latest.book, latest.etag);
              row.replaceWith(fresh);
              fresh.querySelector('input').focus();
            } catch (reloadError) {
              message.textContent = `Could not reload it: ${reloadError.message}`;
            }
          },
        }));
    } else if (error.status === 404) {
      message.textContent = 'This book has been deleted meanwhile.';
    } else if (error instanceof api.ApiError) {
      showServerErrors(form, error, message);
    } else {
      message.textContent = String(error);
    }
  }
}

// ---------------------------------------------------------------------------------------
// Deleting, after a confirmation

// The book is read first, so that the delete names the version the user saw in the dialog
// (If-Match): a book changed by someone else meanwhile is not deleted unseen.
async function confirmDelete(listed) {
  let current;
  try {
    current = await api.getBook(listed.id);
  } catch (error) {
    if (error instanceof api.Unavailable) goOffline();
    else if (error.status === 404) {
      toast(`“${listed.title}” was already deleted.`);
      loadBooks();
    } else toast(`Cannot delete: ${error.message}`);
    return;
  }
  const { book, etag } = current;
  const dialog = $('delete-dialog');
  $('delete-title').textContent = book.title;
  dialog.returnValue = '';
  dialog.onclose = async () => {
    if (dialog.returnValue !== 'delete') return;
    try {
      await api.deleteBook(book.id, etag);
      toast(`Deleted “${book.title}”.`);
    } catch (error) {
      if (error instanceof api.OutcomeUnknown) {
        toast(`The service did not confirm whether “${book.title}” was deleted; the list shows what is stored.`);
      } else if (error instanceof api.Unavailable) {
        goOffline();
        return;
      } else if (error.status === 412) {
        toast(`“${book.title}” was changed by someone else meanwhile, so it was not deleted. Check it and try again.`);
      } else if (error.status === 401) {
        sessionEnded();
        toast(`You are no longer signed in, so “${book.title}” was not deleted. Sign in again to delete it.`);
        return;
      } else if (refusedChange(error)) {
        toast(refusedChange(error));
      } else {
        toast(error.status === 404 ? `“${book.title}” was already deleted.` : `Could not delete: ${error.message}`);
      }
    }
    loadBooks();
  };
  dialog.showModal();
}

// ---------------------------------------------------------------------------------------
// When the service goes away: say so, pause what needs it, keep checking, and recover alone

// Marks a control that changes the catalogue: disabled, with the reason as its description,
// unless this page may write.
function writeControl(control) {
  const reason = writeBlocker();
  control.disabled = reason !== null;
  if (reason) control.title = reason;
  else control.removeAttribute('title');
  return control;
}

// Why changes are not possible now, or null.
function writeBlocker() {
  if (!state.online) return 'The service is unavailable.';
  if (!state.session.authenticated) return 'Sign in to change the catalogue.';
  if (state.session.scope !== 'write') return READ_ONLY_NOTE;
  return null;
}

function updateControls() {
  for (const control of document.querySelectorAll('[data-needs-api]')) {
    control.disabled = !state.online;
  }
  for (const control of document.querySelectorAll('[data-needs-write]')) writeControl(control);
  if (state.online) {
    $('page-prev').disabled = !$('page-prev').dataset.href;
    $('page-next').disabled = !$('page-next').dataset.href;
  }
}

function goOffline() {
  if (!state.online) return;
  state.online = false;
  $('offline-banner').hidden = false;
  document.body.classList.add('offline');
  updateControls();
}

function goOnline() {
  if (state.online) return;
  state.online = true;
  $('offline-banner').hidden = true;
  document.body.classList.remove('offline');
  updateControls();
  toast('The service is back.');
  loadSession();
  loadBooks();
}

async function checkHealth() {
  const up = await api.ready();
  if (up) goOnline();
  else goOffline();
}

// ---------------------------------------------------------------------------------------
// Signing in and out

// What a refused change (403, 429) means for the user, or null for other errors.
function refusedChange(error) {
  if (!(error instanceof api.ApiError)) return null;
  if (error.status === 403) return `The change was refused: ${error.message}`;
  if (error.status === 429) {
    const wait = error.retryAfter ? ` Wait ${error.retryAfter} s, then try again.` : ' Wait a moment, then try again.';
    return `Too many requests from this browser.${wait}`;
  }
  return null;
}

function setSession(session) {
  state.session = session;
  const signedIn = session.authenticated;
  $('account-status').textContent = signedIn
    ? `Signed in as ${session.name}${session.scope === 'write' ? '' : ' (read-only)'}`
    : '';
  $('sign-in-open').hidden = signedIn;
  $('sign-out').hidden = !signedIn;
  if (signedIn) closeSignIn();
  let note = null;
  if (!signedIn) note = SIGNED_OUT_NOTE;
  else if (session.scope !== 'write') note = READ_ONLY_NOTE;
  for (const id of ['write-note', 'add-note']) {
    $(id).textContent = note ?? '';
    $(id).hidden = note === null;
  }
  updateControls();
}

function openSignIn(message = '') {
  const form = $('sign-in-form');
  form.hidden = false;
  $('sign-in-open').setAttribute('aria-expanded', 'true');
  $('sign-in-error').textContent = message;
  $('sign-in-token').focus();
}

function closeSignIn() {
  $('sign-in-form').hidden = true;
  $('sign-in-open').setAttribute('aria-expanded', 'false');
  $('sign-in-error').textContent = '';
}

// The server says the session is over (expired, signed out elsewhere, token revoked): what
// was typed stays where it is, and signing in again is one step away.
function sessionEnded() {
  setSession({ authenticated: false, public_reads: state.session.public_reads });
  openSignIn('Your session has ended. Sign in again to save your changes; what you typed is kept.');
}

async function signIn(event) {
  event.preventDefault();
  const input = $('sign-in-token');
  const token = input.value.trim();
  const error = $('sign-in-error');
  if (!token) {
    error.textContent = 'Paste an API token first.';
    input.setAttribute('aria-invalid', 'true');
    input.focus();
    return;
  }
  const submit = $('sign-in-submit');
  submit.disabled = true;
  try {
    const session = await api.signIn(token);
    input.value = '';
    input.setAttribute('aria-invalid', 'false');
    setSession(session);
    toast(`Signed in as ${session.name}.`);
    if (!session.public_reads) loadBooks();
  } catch (failure) {
    input.setAttribute('aria-invalid', 'true');
    if (failure instanceof api.Unavailable || failure instanceof api.OutcomeUnknown) {
      error.textContent = 'The service is unavailable; try again when it is back.';
    } else if (failure.status === 401) {
      error.textContent = 'That token does not work: it is unknown, revoked or expired.';
    } else if (failure.status === 422) {
      error.textContent = 'That is not a token: paste the whole token (it starts with bks_).';
    } else {
      error.textContent = refusedChange(failure) ?? `Signing in failed: ${failure.message}`;
    }
    input.focus();
  } finally {
    submit.disabled = false;
  }
}

async function signOut() {
  try {
    await api.signOut();
  } catch (error) {
    toast(`Signing out failed: ${error.message}`);
    return;
  }
  setSession({ authenticated: false, public_reads: state.session.public_reads });
  toast('Signed out.');
  if (!state.session.public_reads) loadBooks();
  $('sign-in-open').focus();
}

async function loadSession() {
  try {
    setSession(await api.session());
  } catch (error) {
    if (error instanceof api.Unavailable) goOffline();
    setSession({ authenticated: false, public_reads: state.session.public_reads });
  }
}

// ---------------------------------------------------------------------------------------
// Wiring

function start() {
  state.view = readUrl();
  showViewInControls(state.view);

  let searchTimer = 0;
  $('filter-q').addEventListener('input', (event) => {
    clearTimeout(searchTimer);
    const q = event.target.value;
    searchTimer = setTimeout(() => navigate({ q, ...FIRST_PAGE }), SEARCH_DELAY_MS);
  });
  $('filter-genre').addEventListener('change', (event) => navigate({ genre: event.target.value.trim(), ...FIRST_PAGE }));
  $('filter-sort').addEventListener('change', (event) => navigate({ sort: event.target.value, ...FIRST_PAGE }, { push: true }));
  $('filter-limit').addEventListener('change', (event) => navigate({ limit: event.target.value, ...FIRST_PAGE }, { push: true }));
  $('filters').addEventListener('submit', (event) => {
    event.preventDefault();
    clearTimeout(searchTimer);
    navigate({ q: $('filter-q').value, genre: $('filter-genre').value.trim(), ...FIRST_PAGE });
  });
  $('page-prev').addEventListener('click', () => goToLink($('page-prev')));
  $('page-next').addEventListener('click', () => goToLink($('page-next')));
  $('list-retry').addEventListener('click', loadBooks);
  $('sign-in-open').addEventListener('click', () => {
    if ($('sign-in-form').hidden) openSignIn();
    else closeSignIn();
  });
  $('sign-in-cancel').addEventListener('click', () => {
    closeSignIn();
    $('sign-in-open').focus();
  });
  $('sign-in-form').addEventListener('submit', signIn);
  $('sign-out').addEventListener('click', signOut);

  const form = $('add-form');
  form.addEventListener('submit', addBook);
  // Messages appear when the form is sent, and then follow each correction as it is typed.
  // (Checking on blur moved the button under the pointer when a message appeared.)
  for (const input of form.querySelectorAll('input')) {
    input.addEventListener('input', () => {
      if (input.getAttribute('aria-invalid') === 'true') validateInput(input);
    });
  }

  window.addEventListener('popstate', () => {
    state.view = readUrl();
    showViewInControls(state.view);
    loadBooks();
  });

  setSession(state.session);
  loadSession();
  loadBooks();
  setInterval(checkHealth, HEALTH_EVERY_MS);
}

start();

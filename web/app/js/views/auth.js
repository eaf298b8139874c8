// The signed-out screen: log in, or sign up (which then logs in). Calls `onSession` with the
// new device's session.

import { Api, ApiError } from '../api.js';
import { h, replace } from '../dom.js';

/** @typedef {import('../api.js').Login} Session */

/** A name for this device in the account's device list, e.g. "Chrome on Linux". */
function deviceName() {
  const ua = navigator.userAgent;
  const browser = /Edg\//.test(ua)
    ? 'Edge'
    : /Firefox\//.test(ua)
      ? 'Firefox'
      : /Chrom(e|ium)\//.test(ua)
        ? 'Chrome'
        : /Safari\//.test(ua)
          ? 'Safari'
          : 'Browser';
  const os = /Android/.test(ua)
    ? 'Android'
    : /iPhone|iPad/.test(ua)
      ? 'iOS'
      : /Mac OS X/.test(ua)
        ? 'macOS'
        : /Windows/.test(ua)
          ? 'Windows'
          : /Linux/.test(ua)
            ? 'Linux'
            : 'the web';
  return `${browser} on ${os}`;
}

/**
 * @param {HTMLElement} root
 * @param {{onSession: (s: Session) => void, notice?: string}} options
 */
export function renderAuth(root, { onSession, notice }) {
  const api = new Api();
  /** @type {'login' | 'signup'} */
  let mode = 'login';

  const error = h('p', { class: 'form-error', role: 'alert' });
  const card = h('div', { class: 'auth-card' });
  root.replaceChildren(
    h(
      'main',
      { class: 'auth' },
      h(
        'div',
        { class: 'auth-brand' },
        h('img', { src: '/icons/icon.svg', alt: '', class: 'auth-logo', width: 56, height: 56 }),
        h('h1', {}, 'Confab'),
        h('p', { class: 'auth-tagline' }, 'Chat with the people you work and live with.'),
      ),
      card,
    ),
  );

  /** @param {string} id @param {string} label @param {Record<string, unknown>} attrs */
  const field = (id, label, attrs, hint = '') =>
    h(
      'div',
      { class: 'field' },
      h('label', { for: id }, label),
      h('input', { id, name: id, ...attrs, ...(hint ? { 'aria-describedby': `${id}-hint` } : {}) }),
      hint && h('p', { class: 'hint', id: `${id}-hint` }, hint),
    );

  function draw() {
    const signup = mode === 'signup';
    const form = h(
      'form',
      { class: 'auth-form', novalidate: true, 'aria-labelledby': 'auth-title' },
      h('h2', { id: 'auth-title' }, signup ? 'Create your account' : 'Log in'),
      field('username', 'Username', {
        autocomplete: 'username',
        autocapitalize: 'none',
        spellcheck: 'false',
        required: true,
        minlength: 3,
        maxlength: 32,
      }, signup ? '3 to 32 characters: a-z, 0-9, _ . -' : ''),
      signup &&
        field('display-name', 'Display name (optional)', {
          autocomplete: 'name',
          maxlength: 64,
        }),
      field('password', 'Password', {
        type: 'password',
        autocomplete: signup ? 'new-password' : 'current-password',
        required: true,
        minlength: 8,
        maxlength: 1024,
      }, signup ? 'At least 8 characters.' : ''),
      error,
      h('button', { type: 'submit', class: 'btn primary wide' }, signup ? 'Sign up' : 'Log in'),
    );
    const other = h(
      'p',
      { class: 'auth-switch' },
      signup ? 'Already have an account? ' : 'New to Confab? ',
      h(
        'button',
        {
          type: 'button',
          class: 'link',
          onclick: () => {
            mode = signup ? 'login' : 'signup';
            error.textContent = '';
            draw();
            /** @type {HTMLInputElement | null} */ (card.querySelector('#username'))?.focus();
          },
        },
        signup ? 'Log in' : 'Create an account',
      ),
    );
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      submit(form);
    });
    replace(card, form, other);
  }

  /** @param {HTMLFormElement} form */
  async function submit(form) {
    const data = new FormData(form);
    const username = String(data.get('username') ?? '').trim().toLowerCase();
    const password = String(data.get('password') ?? '');
    const displayName = String(data.get('display-name') ?? '').trim();
    error.textContent = '';
    if (username.length < 3) return fail('Enter a username of at least 3 characters.', 'username');
    if (mode === 'signup' && !/^[a-z0-9_.-]{3,32}$/.test(username)) {
      return fail('Usernames are 3 to 32 characters: a-z, 0-9, _ . and -.', 'username');
    }
    if (password.length < 8) return fail('Passwords are at least 8 characters.', 'password');
    const button = /** @type {HTMLButtonElement} */ (form.querySelector('button[type=submit]'));
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    try {
      if (mode === 'signup') await api.signup(username, password, displayName || undefined);
      const session = await api.login(username, password, deviceName());
      onSession(session);
    } catch (e) {
      button.disabled = false;
      button.removeAttribute('aria-busy');
      if (e instanceof ApiError) {
        if (e.code === 'unauthorized') fail('Wrong username or password.', 'password');
        else if (e.code === 'conflict') fail('That username is taken. Try another one.', 'username');
        else if (e.code === 'rate_limited') fail('Too many attempts. Wait a minute and try again.');
        else fail(e.message);
      } else fail(String(e));
    }
  }

  /** @param {string} message @param {string} [focus] id of the field to focus */
  function fail(message, focus) {
    error.textContent = message;
    if (focus) /** @type {HTMLInputElement | null} */ (card.querySelector(`#${focus}`))?.focus();
  }

  draw();
  if (notice) error.textContent = notice;
  /** @type {HTMLInputElement | null} */ (card.querySelector('#username'))?.focus();
}

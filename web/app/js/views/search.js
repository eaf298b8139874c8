// Searching messages: a search box above the conversation list and, while it holds a
// query, the results in the list's place: each with its conversation, sender, time and a
// snippet with the matched words marked. A result links to #/c/<id>/m/<seq>, which opens
// the conversation at that message.

import { ApiError } from '../api.js';
import { h, icon, replace } from '../dom.js';
import { listTime } from '../format.js';

/** @typedef {import('../store.js').Store} Store */
/** @typedef {import('../sync.js').Sync} Sync */
/** @typedef {import('../api.js').SearchResult} SearchResult */

/** Typing pauses this long before a search goes out. */
const DEBOUNCE_MS = 300;

export class SearchPanel {
  /**
   * @param {Store} store
   * @param {Sync} sync
   * @param {(searching: boolean) => void} onToggle called when results replace the list or go
   */
  constructor(store, sync, onToggle) {
    this.store = store;
    this.sync = sync;
    this.onToggle = onToggle;
    /** The query the results are for. */
    this.query = '';
    /** @type {SearchResult[]} */
    this.results = [];
    /** @type {string | undefined} */
    this.cursor = undefined;
    /** Answers to older queries are dropped. */
    this.asked = 0;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.timer = undefined;

    this.input = h('input', {
      type: 'search',
      name: 'q',
      class: 'search-input',
      placeholder: 'Search messages',
      'aria-label': 'Search messages',
      autocomplete: 'off',
      enterkeyhint: 'search',
      maxlength: 256,
      oninput: () => this.schedule(),
      onkeydown: (/** @type {KeyboardEvent} */ e) => {
        if (e.key === 'Escape') this.clear();
      },
    });
    this.form = h(
      'form',
      {
        role: 'search',
        class: 'search',
        onsubmit: (/** @type {SubmitEvent} */ e) => {
          e.preventDefault();
          this.run();
        },
      },
      icon('search'),
      this.input,
    );
    this.status = h('p', { class: 'search-status', role: 'status' });
    this.ul = h('ul', { class: 'search-results', 'aria-label': 'Search results' });
    this.more = h('button', { type: 'button', class: 'btn subtle', hidden: true, onclick: () => this.run(true) }, 'More results');
    this.section = h('section', { class: 'search-panel', hidden: true, 'aria-label': 'Search' }, this.status, this.ul, this.more);
    store.addEventListener('users', () => this.render());
    store.addEventListener('conversations', () => this.render());
  }

  schedule() {
    clearTimeout(this.timer);
    if (this.input.value.trim() === '') {
      this.clear(false);
      return;
    }
    this.timer = setTimeout(() => this.run(), DEBOUNCE_MS);
  }

  /** Back to the conversation list. @param {boolean} [emptyBox] */
  clear(emptyBox = true) {
    clearTimeout(this.timer);
    if (emptyBox) this.input.value = '';
    this.asked++;
    this.query = '';
    this.results = [];
    this.section.hidden = true;
    this.onToggle(false);
  }

  /** Searches for what the box holds, or the next page of it. @param {boolean} [more] */
  async run(more = false) {
    clearTimeout(this.timer);
    const q = this.input.value.trim();
    if (q === '') return this.clear();
    const asked = ++this.asked;
    if (!more) {
      this.query = q;
      this.results = [];
      this.cursor = undefined;
    }
    this.section.hidden = false;
    this.onToggle(true);
    this.status.textContent = 'Searching…';
    this.more.hidden = true;
    try {
      const page = await this.sync.api.search(q, { cursor: more ? this.cursor : undefined });
      if (asked !== this.asked) return;
      this.results = this.results.concat(page.results);
      this.cursor = page.next_cursor;
      this.sync.ensureUsers(page.results.map((r) => r.message.sender_id));
      for (const r of page.results) {
        if (!this.store.conversations.has(r.message.conversation_id)) {
          this.sync.fetchConversation(r.message.conversation_id);
        }
      }
      this.render();
    } catch (e) {
      if (asked !== this.asked) return;
      this.status.textContent = e instanceof ApiError ? e.message : 'Search failed. Check your connection and try again.';
    }
  }

  render() {
    if (this.section.hidden) return;
    const n = this.results.length;
    this.status.textContent =
      n === 0 ? `No messages found for “${this.query}”.` : `${n}${this.cursor ? '+' : ''} message${n === 1 ? '' : 's'} found`;
    replace(this.ul, this.results.map((r) => this.row(r)));
    this.more.hidden = !this.cursor;
  }

  /** @param {SearchResult} r */
  row(r) {
    const m = r.message;
    const c = this.store.conversations.get(m.conversation_id);
    const where = c ? this.store.titleOf(c) : 'Conversation';
    const who = m.sender_id === this.store.me ? 'You' : this.store.nameOf(m.sender_id);
    const at = new Date(m.created_at);
    return h(
      'li',
      {},
      h(
        'a',
        { class: 'search-result', href: `#/c/${m.conversation_id}/m/${m.seq}` },
        h(
          'span',
          { class: 'search-head' },
          h('span', { class: 'search-where' }, where),
          h('time', { datetime: m.created_at }, listTime(at)),
        ),
        h(
          'span',
          { class: 'search-snippet', dir: 'auto' },
          h('span', { class: 'search-who' }, `${who}: `),
          r.snippet.map((part) => (part.match ? h('mark', {}, part.text) : part.text)),
        ),
      ),
    );
  }
}

// The signed-in layout: a sidebar (app bar with the connection state and actions, the
// conversation list, your account) and the chat pane. Wide screens show both; narrow ones
// (phones) show one at a time, switched by the route (#/ or #/c/<id>).

import { h, icon } from '../dom.js';
import { ChatView } from './chat.js';
import { accountDialog, groupInfoDialog, newChatDialog, newGroupDialog, settingsDialog } from './dialogs.js';
import { ConversationList, avatar } from './list.js';
import { SearchPanel } from './search.js';

/** @typedef {import('../store.js').Store} Store */
/** @typedef {import('../sync.js').Sync} Sync */

const STATE_TEXT = { connecting: 'Connecting…', online: 'Online', offline: 'Offline' };

export class Shell {
  /**
   * @param {HTMLElement} root
   * @param {Store} store
   * @param {Sync} sync
   * @param {{onLogout: () => void, onDeleted: () => void}} hooks
   */
  constructor(root, store, sync, { onLogout, onDeleted }) {
    this.store = store;
    this.sync = sync;
    const me = store.session.user;
    /** @param {string} id */
    const go = (id) => {
      location.hash = `#/c/${id}`;
    };

    this.conn = h('span', { class: 'conn', role: 'status' });
    this.offlineNote = h('p', { class: 'offline-note', hidden: true });
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.noteTimer = undefined;
    /** When the connection was last lost (0 while online). */
    this.offlineSince = 0;
    const ul = h('ul', { class: 'conv-list', 'aria-label': 'Conversations' });
    const empty = h(
      'div',
      { class: 'list-empty', hidden: true },
      h('p', {}, 'No conversations yet.'),
      h('p', {}, 'Start a chat with someone by their username, or create a group.'),
    );
    this.list = new ConversationList(ul, empty, store);
    const nav = h('nav', { class: 'conv-nav', 'aria-label': 'Conversation list' }, ul, empty, this.list.archivedBtn);
    // While a search shows results, they take the list's place.
    this.search = new SearchPanel(store, sync, (searching) => {
      nav.hidden = searching;
    });
    this.pane = h('main', { class: 'chat-pane', id: 'chat-pane' });
    this.shell = h(
      'div',
      { class: 'shell', dataset: { view: 'list' } },
      h(
        'aside',
        { class: 'sidebar', 'aria-label': 'Conversations and account' },
        h(
          'header',
          { class: 'bar' },
          h(
            'div',
            { class: 'brand' },
            h('img', { src: '/icons/icon.svg', alt: '', width: 28, height: 28 }),
            h('h1', {}, 'Confab'),
          ),
          this.conn,
          h(
            'div',
            { class: 'bar-actions' },
            h('button', { type: 'button', class: 'icon-btn', 'aria-label': 'New chat', title: 'New chat', onclick: () => newChatDialog(sync, go) }, icon('compose')),
            h('button', { type: 'button', class: 'icon-btn', 'aria-label': 'New group', title: 'New group', onclick: () => newGroupDialog(sync, go) }, icon('group')),
          ),
        ),
        this.offlineNote,
        this.search.form,
        nav,
        this.search.section,
        h(
          'footer',
          { class: 'me' },
          avatar(me.id, me.display_name || me.username),
          h(
            'span',
            { class: 'me-main' },
            h('span', { class: 'me-name' }, me.display_name || me.username),
            h('span', { class: 'me-sub' }, `@${me.username}`),
          ),
          h('button', { type: 'button', class: 'icon-btn', 'aria-label': 'Account', title: 'Account: password, devices, blocked users, your data', 'aria-haspopup': 'dialog', onclick: () => accountDialog(store, sync, onDeleted) }, icon('user')),
          h('button', { type: 'button', class: 'btn subtle small', onclick: onLogout }, icon('logout'), 'Log out'),
        ),
      ),
      this.pane,
    );
    root.replaceChildren(this.shell);

    this.chat = new ChatView(this.pane, store, sync, {
      onBack: () => {
        location.hash = '#/';
      },
      onInfo: (id) => groupInfoDialog(store, sync, id),
      onSettings: (id) => settingsDialog(store, sync, id),
      onNewChat: () => newChatDialog(sync, go),
    });
    store.addEventListener('connection', () => this.renderConnection());
    store.addEventListener('outbox', () => this.renderConnection());
    this.renderConnection();
    this.list.render();
  }

  /**
   * Shows conversation `id` (or none), at the message `seq` if given (a search result).
   * @param {string | null} id @param {number | null} [seq]
   */
  route(id, seq = null) {
    const was = this.chat.id;
    this.shell.dataset.view = id ? 'chat' : 'list';
    this.chat.open(id, seq);
    this.list.render();
    // Back to the list on a phone: focus the conversation we came from, not the page top.
    if (!id && was && this.shell.contains(document.activeElement) === false) {
      /** @type {HTMLElement | null} */ (this.shell.querySelector(`a[href="#/c/${was}"]`))?.focus();
    }
  }

  renderConnection() {
    const state = this.store.connection;
    this.conn.dataset.state = state;
    this.conn.textContent = STATE_TEXT[state];
    const waiting = this.store.outbox.filter((p) => !p.failed).length;
    this.offlineNote.textContent =
      waiting > 0
        ? `You're offline. ${waiting} message${waiting === 1 ? '' : 's'} will be sent when you're back.`
        : "You're offline. New messages will arrive when you're back.";
    // Shown after a moment without a connection, so a quick reconnect does not flash it.
    if (state === 'online') {
      this.offlineSince = 0;
      clearTimeout(this.noteTimer);
      this.offlineNote.hidden = true;
    } else if (!this.offlineSince) {
      this.offlineSince = Date.now();
      this.noteTimer = setTimeout(() => {
        this.offlineNote.hidden = this.store.connection === 'online';
      }, 1500);
    }
  }
}

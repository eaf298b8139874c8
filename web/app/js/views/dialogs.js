// Modal dialogs (<dialog>, so focus stays inside and Escape closes): start a direct chat by
// username, create a group, a group's info (rename, members with presence, add, remove,
// leave), the user's own settings for a conversation (notifications, pin, archive, and
// block for a direct one), and their account (password, devices, blocked users).

import { ApiError } from '../api.js';
import { h, icon, replace } from '../dom.js';
import { lastSeen } from '../format.js';
import { avatar } from './list.js';

/** @typedef {import('../store.js').Store} Store */
/** @typedef {import('../sync.js').Sync} Sync */

/**
 * A dialog with a title and a close button; removed from the page when closed.
 * @param {string} title @param {string} id
 * @param {() => void} [onClose]
 */
function dialog(title, id, onClose) {
  const body = h('div', { class: 'sheet-body' });
  const el = h(
    'dialog',
    { class: 'sheet', 'aria-labelledby': `${id}-heading` },
    h(
      'div',
      { class: 'sheet-head' },
      h('h2', { id: `${id}-heading` }, title),
      h('button', { type: 'button', class: 'icon-btn', 'aria-label': 'Close', onclick: () => el.close() }, icon('close')),
    ),
    body,
  );
  el.addEventListener('close', () => {
    el.remove();
    onClose?.();
  });
  // A click on the backdrop (outside the box) closes, as people expect.
  el.addEventListener('click', (e) => {
    if (e.target === el) el.close();
  });
  document.body.append(el);
  return { el, body };
}

/** @param {unknown} e */
function message(e) {
  if (e instanceof ApiError) {
    if (e.code === 'not_found' && /user/.test(e.message)) return 'There is no user with that name.';
    return e.message;
  }
  return String(e);
}

/**
 * @param {Sync} sync
 * @param {(conversationId: string) => void} onOpen
 */
export function newChatDialog(sync, onOpen) {
  const { el, body } = dialog('New chat', 'new-chat');
  const error = h('p', { class: 'form-error', role: 'alert' });
  const input = h('input', {
    id: 'new-chat-username',
    name: 'username',
    autocomplete: 'off',
    autocapitalize: 'none',
    spellcheck: 'false',
    required: true,
    placeholder: 'e.g. ada',
  });
  const form = h(
    'form',
    { class: 'stack' },
    h('div', { class: 'field' }, h('label', { for: 'new-chat-username' }, 'Username'), input),
    error,
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn primary' }, 'Start chat')),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    if (!input.value.trim()) {
      error.textContent = 'Enter the username of the person to chat with.';
      input.focus();
      return;
    }
    try {
      const c = await sync.startDirect(input.value);
      el.close();
      onOpen(c.id);
    } catch (err) {
      error.textContent = message(err);
      input.focus();
    }
  });
  body.append(form);
  el.showModal();
  input.focus();
}

/**
 * @param {Sync} sync
 * @param {(conversationId: string) => void} onOpen
 */
export function newGroupDialog(sync, onOpen) {
  const { el, body } = dialog('New group', 'new-group');
  const error = h('p', { class: 'form-error', role: 'alert' });
  const title = h('input', { id: 'new-group-title', name: 'title', required: true, maxlength: 64, autocomplete: 'off' });
  const members = h('input', {
    id: 'new-group-members',
    name: 'members',
    autocomplete: 'off',
    autocapitalize: 'none',
    spellcheck: 'false',
    placeholder: 'e.g. ada, bob',
    'aria-describedby': 'new-group-members-hint',
  });
  const form = h(
    'form',
    { class: 'stack' },
    h('div', { class: 'field' }, h('label', { for: 'new-group-title' }, 'Group name'), title),
    h(
      'div',
      { class: 'field' },
      h('label', { for: 'new-group-members' }, 'Members'),
      members,
      h('p', { class: 'hint', id: 'new-group-members-hint' }, 'Usernames, separated by commas. You can add more later.'),
    ),
    error,
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn primary' }, 'Create group')),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    if (!title.value.trim()) {
      error.textContent = 'Give the group a name.';
      title.focus();
      return;
    }
    const names = members.value
      .split(/[,\s]+/)
      .map((s) => s.trim())
      .filter(Boolean);
    try {
      const c = await sync.createGroup(title.value.trim(), names);
      el.close();
      onOpen(c.id);
    } catch (err) {
      error.textContent = message(err);
    }
  });
  body.append(form);
  el.showModal();
  title.focus();
}

/**
 * A group's info: its name, members (with presence and role), and what an admin or member
 * may do. Redraws the member list as the store changes.
 * @param {Store} store @param {Sync} sync @param {string} id
 */
export function groupInfoDialog(store, sync, id) {
  const c0 = store.conversations.get(id);
  if (!c0) return;
  const listeners = /** @type {[string, EventListener][]} */ ([]);
  const { el, body } = dialog('Group info', 'group-info', () => {
    for (const [type, fn] of listeners) store.removeEventListener(type, fn);
  });
  const error = h('p', { class: 'form-error', role: 'alert' });
  const isAdmin = () =>
    store.conversations.get(id)?.members.find((m) => m.user_id === store.me)?.role === 'admin';

  // Name.
  const nameInput = h('input', { id: 'group-name', name: 'title', maxlength: 64, required: true, autocomplete: 'off' });
  nameInput.value = c0.title ?? '';
  const renameForm = h(
    'form',
    { class: 'inline-form' },
    h('div', { class: 'field grow' }, h('label', { for: 'group-name' }, 'Group name'), nameInput),
    h('button', { type: 'submit', class: 'btn' }, 'Rename'),
  );
  renameForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    try {
      await sync.renameGroup(id, nameInput.value.trim());
    } catch (err) {
      error.textContent = message(err);
    }
  });

  // Members.
  const heading = h('h3', { id: 'members-heading' });
  const list = h('ul', { class: 'member-list', 'aria-labelledby': 'members-heading' });

  // Add.
  const addInput = h('input', {
    id: 'group-add',
    name: 'username',
    autocomplete: 'off',
    autocapitalize: 'none',
    spellcheck: 'false',
    placeholder: 'username',
  });
  const addForm = h(
    'form',
    { class: 'inline-form' },
    h('div', { class: 'field grow' }, h('label', { for: 'group-add' }, 'Add member by username'), addInput),
    h('button', { type: 'submit', class: 'btn' }, icon('plus'), 'Add'),
  );
  addForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    if (!addInput.value.trim()) return;
    try {
      await sync.addMember(id, addInput.value);
      addInput.value = '';
      addInput.focus();
    } catch (err) {
      error.textContent = message(err);
    }
  });

  // Leave, with a confirmation step.
  const leaveArea = h('div', { class: 'leave' });
  const drawLeave = (confirming = false) => {
    if (!confirming) {
      replace(
        leaveArea,
        h('button', { type: 'button', class: 'btn danger', onclick: () => drawLeave(true) }, 'Leave group'),
      );
      return;
    }
    const yes = h(
      'button',
      {
        type: 'button',
        class: 'btn danger',
        onclick: async () => {
          error.textContent = '';
          try {
            await sync.removeMember(id, store.me);
            el.close();
          } catch (err) {
            error.textContent = message(err);
          }
        },
      },
      'Leave',
    );
    replace(
      leaveArea,
      h('p', {}, 'Leave this group? You will keep its history up to now but get no new messages.'),
      h('div', { class: 'actions' }, h('button', { type: 'button', class: 'btn', onclick: () => drawLeave(false) }, 'Cancel'), yes),
    );
    yes.focus();
  };

  const draw = () => {
    const c = store.conversations.get(id);
    if (!c) return;
    const admin = isAdmin();
    const active = c.active !== false;
    renameForm.hidden = !admin || !active;
    addForm.hidden = !admin || !active;
    leaveArea.hidden = !active;
    heading.textContent = `${c.members.length} member${c.members.length === 1 ? '' : 's'}`;
    replace(
      list,
      c.members.map((m) => {
        const u = store.users.get(m.user_id);
        const name = store.nameOf(m.user_id);
        const p = store.presence.get(m.user_id);
        const me = m.user_id === store.me;
        const status = me ? 'you' : p?.status === 'online' ? 'online' : p ? lastSeen(p.last_active_at) : '';
        return h(
          'li',
          { class: 'member' },
          h('span', { class: 'avatar-wrap' }, avatar(m.user_id, name), h('span', { class: `dot${me || p?.status === 'online' ? ' online' : ''}` })),
          h(
            'span',
            { class: 'member-main' },
            h('span', { class: 'member-name' }, name, m.role === 'admin' && h('span', { class: 'role' }, 'Admin')),
            h('span', { class: 'member-sub' }, [u ? `@${u.username}` : '', status].filter(Boolean).join(' · ')),
          ),
          admin && !me && active &&
            h(
              'button',
              {
                type: 'button',
                class: 'btn small',
                'aria-label': `Remove ${name}`,
                onclick: async () => {
                  error.textContent = '';
                  try {
                    await sync.removeMember(id, m.user_id);
                  } catch (err) {
                    error.textContent = message(err);
                  }
                },
              },
              'Remove',
            ),
        );
      }),
    );
  };

  for (const type of ['conversations', 'receipts', 'users', 'presence']) {
    const fn = () => draw();
    store.addEventListener(type, fn);
    listeners.push([type, fn]);
  }
  drawLeave(false);
  draw();
  body.append(renameForm, h('section', { class: 'members' }, heading, list), addForm, error, leaveArea);
  sync.refreshPresence(c0.members.map((m) => m.user_id));
  el.showModal();
}

/** How long a lower notification level may last, in the settings dialog. */
const MUTE_FOR = [
  ['', 'Until I change it'],
  ['3600000', '1 hour'],
  ['28800000', '8 hours'],
  ['86400000', '1 day'],
  ['604800000', '1 week'],
];

/**
 * The user's own settings for a conversation: what notifies them (and for how long),
 * pinned, archived. Each change goes to the server at once and shows on all their devices.
 * @param {Store} store @param {Sync} sync @param {string} id
 */
export function settingsDialog(store, sync, id) {
  const c0 = store.conversations.get(id);
  if (!c0) return;
  const listeners = /** @type {[string, EventListener][]} */ ([]);
  const { el, body } = dialog('Conversation settings', 'conversation-settings', () => {
    for (const [type, fn] of listeners) store.removeEventListener(type, fn);
  });
  const error = h('p', { class: 'form-error', role: 'alert' });
  /** @param {import('../api.js').SettingsChange} change */
  const save = async (change) => {
    error.textContent = '';
    try {
      await sync.changeSettings(id, change);
    } catch (err) {
      error.textContent = message(err);
      draw();
    }
  };

  const levels = /** @type {const} */ ([
    ['all', 'All messages'],
    ['mentions', 'Only mentions of me'],
    ['none', 'Nothing'],
  ]);
  const radios = levels.map(([value, label]) => {
    const input = h('input', { type: 'radio', name: 'notify', value, id: `notify-${value}` });
    input.addEventListener('change', () => {
      if (input.checked) save(levelChange(value));
    });
    return { value, input, row: h('div', { class: 'choice' }, input, h('label', { for: `notify-${value}` }, label)) };
  });
  const duration = h(
    'select',
    { id: 'notify-for', name: 'for' },
    MUTE_FOR.map(([value, label]) => h('option', { value }, label)),
  );
  /** @param {'all' | 'mentions' | 'none'} level @returns {import('../api.js').SettingsChange} */
  const levelChange = (level) => {
    if (level === 'all' || !duration.value) return { notify: level };
    return { notify: level, notify_until: new Date(Date.now() + Number(duration.value)).toISOString() };
  };
  duration.addEventListener('change', () => {
    const level = store.levelOf(/** @type {import('../api.js').Conversation} */ (store.conversations.get(id)));
    if (level !== 'all') save(levelChange(level));
  });
  const until = h('p', { class: 'hint', id: 'notify-until' });
  const pinned = h('input', { type: 'checkbox', id: 'setting-pinned' });
  pinned.addEventListener('change', () => save({ pinned: pinned.checked }));
  const archived = h('input', { type: 'checkbox', id: 'setting-archived' });
  archived.addEventListener('change', () => save({ archived: archived.checked }));

  const draw = () => {
    const c = store.conversations.get(id);
    if (!c) return;
    const level = store.levelOf(c);
    for (const r of radios) r.input.checked = r.value === level;
    const end = c.settings?.notify_until;
    until.textContent =
      level !== 'all' && end
        ? `Until ${new Date(end).toLocaleString([], { weekday: 'short', hour: '2-digit', minute: '2-digit' })}`
        : level !== 'all'
          ? 'Until you change it'
          : '';
    pinned.checked = !!c.settings?.pinned;
    archived.checked = !!c.settings?.archived;
  };
  // Block, for a direct conversation.
  const peer = c0.kind === 'direct' ? store.peerOf(c0) : null;
  const blockBtn = h('button', {
    type: 'button',
    class: 'btn danger',
    onclick: async () => {
      if (!peer) return;
      error.textContent = '';
      try {
        await sync.setBlocked(peer, !store.blocked.has(peer));
      } catch (err) {
        error.textContent = message(err);
      }
    },
  });
  const blockNote = h('p', { class: 'hint' });
  const drawBlock = () => {
    if (!peer) return;
    const name = store.nameOf(peer);
    const blocked = store.blocked.has(peer);
    blockBtn.textContent = blocked ? `Unblock ${name}` : `Block ${name}`;
    blockNote.textContent = blocked
      ? `${name} cannot write to you or see when you are online.`
      : `${name} will not be able to write to you here, see when you are online, or add you to groups. Groups you share carry on.`;
  };
  const fn = () => {
    draw();
    drawBlock();
  };
  store.addEventListener('conversations', fn);
  listeners.push(['conversations', fn]);
  draw();
  drawBlock();
  body.append(
    h(
      'fieldset',
      { class: 'stack' },
      h('legend', {}, 'Notifications'),
      radios.map((r) => r.row),
      h('div', { class: 'field' }, h('label', { for: 'notify-for' }, 'For how long'), duration),
      until,
    ),
    h('div', { class: 'choice' }, pinned, h('label', { for: 'setting-pinned' }, 'Pin to the top of the list')),
    h('div', { class: 'choice' }, archived, h('label', { for: 'setting-archived' }, 'Archive (back when a message would notify you)')),
    peer ? h('div', { class: 'stack block-area' }, blockBtn, blockNote) : '',
    error,
  );
  el.showModal();
}

/**
 * The user's account: change the password (the other devices are logged out), privacy
 * (last seen, read receipts), the devices logged in with "Log out" each and "Log out
 * everywhere else", the blocked users with "Unblock", a download of all their data, and
 * deleting the account (`onDeleted` runs once it is gone).
 * @param {Store} store @param {Sync} sync @param {() => void} onDeleted
 */
export function accountDialog(store, sync, onDeleted) {
  const listeners = /** @type {[string, EventListener][]} */ ([]);
  const { el, body } = dialog('Account', 'account', () => {
    for (const [type, fn] of listeners) store.removeEventListener(type, fn);
  });
  const error = h('p', { class: 'form-error', role: 'alert' });
  const done = h('p', { class: 'hint', role: 'status' });

  // Password.
  const current = h('input', { id: 'password-current', type: 'password', autocomplete: 'current-password', required: true });
  const next = h('input', { id: 'password-new', type: 'password', autocomplete: 'new-password', required: true, minlength: 8, maxlength: 1024 });
  const passwordForm = h(
    'form',
    { class: 'stack' },
    h('h3', {}, 'Password'),
    h('div', { class: 'field' }, h('label', { for: 'password-current' }, 'Current password'), current),
    h('div', { class: 'field' }, h('label', { for: 'password-new' }, 'New password (8 characters or more)'), next),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn primary' }, 'Change password')),
  );
  passwordForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    done.textContent = '';
    try {
      await sync.api.changePassword(current.value, next.value);
      current.value = '';
      next.value = '';
      done.textContent = 'Password changed. Your other devices were logged out.';
      drawDevices();
    } catch (err) {
      error.textContent =
        err instanceof ApiError && err.code === 'forbidden' ? 'That is not your current password.' : message(err);
    }
  });

  // Privacy: each off hides the others' from the user too.
  const lastSeenBox = h('input', { type: 'checkbox', id: 'privacy-last-seen' });
  const receiptsBox = h('input', { type: 'checkbox', id: 'privacy-read-receipts' });
  /** @param {{last_seen: boolean, read_receipts: boolean}} p */
  const drawPrivacy = (p) => {
    lastSeenBox.checked = p.last_seen;
    receiptsBox.checked = p.read_receipts;
  };
  /** @param {{last_seen?: boolean, read_receipts?: boolean}} change */
  const savePrivacy = async (change) => {
    error.textContent = '';
    try {
      drawPrivacy(await sync.api.changePrivacy(change));
    } catch (err) {
      error.textContent = message(err);
      sync.api.privacy().then(drawPrivacy, () => {});
    }
  };
  lastSeenBox.addEventListener('change', () => savePrivacy({ last_seen: lastSeenBox.checked }));
  receiptsBox.addEventListener('change', () => savePrivacy({ read_receipts: receiptsBox.checked }));
  sync.api.privacy().then(drawPrivacy, (err) => {
    error.textContent = message(err);
  });
  const privacy = h(
    'section',
    { class: 'stack' },
    h('h3', {}, 'Privacy'),
    h('div', { class: 'choice' }, lastSeenBox, h('label', { for: 'privacy-last-seen' }, 'Show when I was last active')),
    h('div', { class: 'choice' }, receiptsBox, h('label', { for: 'privacy-read-receipts' }, 'Send read receipts')),
    h('p', { class: 'hint' }, "Turn one off and you won't see other people's either."),
  );

  // Devices.
  const devices = h('ul', { class: 'device-list', 'aria-labelledby': 'devices-heading' });
  const everywhere = h('button', { type: 'button', class: 'btn danger' }, 'Log out everywhere else');
  /** @param {import('../api.js').Device[]} others @param {string} said */
  const logOut = async (others, said) => {
    error.textContent = '';
    try {
      for (const d of others) await sync.api.removeDevice(d.id);
      done.textContent = said;
    } catch (err) {
      error.textContent = message(err);
    }
    drawDevices();
  };
  const drawDevices = async () => {
    try {
      const list = await sync.api.devices();
      const others = list.filter((d) => !d.current);
      everywhere.hidden = others.length === 0;
      everywhere.onclick = () => logOut(others, 'Logged out everywhere else.');
      replace(
        devices,
        list.map((d) =>
          h(
            'li',
            { class: 'member' },
            h(
              'span',
              { class: 'member-main' },
              h('span', { class: 'member-name' }, d.name, d.current && h('span', { class: 'role' }, 'This device')),
              h('span', { class: 'member-sub' }, `Last active ${lastSeen(d.last_active_at).replace(/^last seen /, '')}`),
            ),
            !d.current && h('button', { type: 'button', class: 'btn small', 'aria-label': `Log out ${d.name}`, onclick: () => logOut([d], `Logged out ${d.name}.`) }, 'Log out'),
          ),
        ),
      );
    } catch (err) {
      error.textContent = message(err);
    }
  };

  // Blocked users.
  const blocked = h('ul', { class: 'device-list', 'aria-labelledby': 'blocked-heading' });
  const noneBlocked = h('p', { class: 'hint' }, 'You have not blocked anyone.');
  const drawBlocked = () => {
    const ids = [...store.blocked];
    noneBlocked.hidden = ids.length > 0;
    replace(
      blocked,
      ids.map((id) => {
        const name = store.nameOf(id);
        return h(
          'li',
          { class: 'member' },
          h('span', { class: 'member-main' }, h('span', { class: 'member-name' }, name)),
          h('button', {
            type: 'button',
            class: 'btn small',
            'aria-label': `Unblock ${name}`,
            onclick: async () => {
              error.textContent = '';
              try {
                await sync.setBlocked(id, false);
              } catch (err) {
                error.textContent = message(err);
              }
            },
          }, 'Unblock'),
        );
      }),
    );
  };
  for (const type of ['conversations', 'users']) {
    const fn = () => drawBlocked();
    store.addEventListener(type, fn);
    listeners.push([type, fn]);
  }
  sync.blockList().then(drawBlocked, (err) => {
    error.textContent = message(err);
  });
  // Your data: everything the user can see, as one JSON file.
  const download = h('button', { type: 'button', class: 'btn' }, 'Download my data');
  download.addEventListener('click', async () => {
    error.textContent = '';
    done.textContent = 'Preparing your data…';
    download.disabled = true;
    try {
      const url = URL.createObjectURL(await sync.api.exportFile());
      const a = h('a', { href: url, download: 'confab-export.json', hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
      done.textContent = 'Your data was downloaded as confab-export.json.';
    } catch (err) {
      done.textContent = '';
      error.textContent = message(err);
    } finally {
      download.disabled = false;
    }
  });
  const data = h(
    'section',
    { class: 'stack' },
    h('h3', {}, 'Your data'),
    h('p', { class: 'hint' }, 'Your profile, devices, settings and every conversation you can see, with its messages, as a JSON file.'),
    h('div', { class: 'actions' }, download),
  );

  // Deleting the account, with the password again.
  const deletePassword = h('input', { id: 'delete-password', type: 'password', autocomplete: 'current-password', required: true });
  const deleteForm = h(
    'form',
    { class: 'stack' },
    h('h3', {}, 'Delete account'),
    h(
      'p',
      { class: 'hint' },
      'You leave every group and are logged out everywhere. Your messages stay for the others, from “Deleted user”. This cannot be undone.',
    ),
    h('div', { class: 'field' }, h('label', { for: 'delete-password' }, 'Password to confirm'), deletePassword),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn danger' }, 'Delete my account')),
  );
  deleteForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    done.textContent = '';
    try {
      await sync.api.deleteAccount(deletePassword.value);
    } catch (err) {
      error.textContent =
        err instanceof ApiError && err.code === 'forbidden' ? 'That is not your password.' : message(err);
      return;
    }
    el.close();
    onDeleted();
  });

  drawDevices();
  drawBlocked();
  body.append(
    passwordForm,
    privacy,
    h('section', { class: 'members' }, h('h3', { id: 'devices-heading' }, 'Devices'), devices, everywhere),
    h('section', { class: 'members' }, h('h3', { id: 'blocked-heading' }, 'Blocked users'), blocked, noneBlocked),
    data,
    deleteForm,
    done,
    error,
  );
  el.showModal();
}

// nav.js: the header every signed-in page shares (links, who, sign out)
import { el } from './dom.js';
import { signOut } from './api.js';

export function header(user, extra = []) {
  const logout = el('button', {
    id: 'logout',
    onclick: async () => { await signOut(); location.href = '/index.html'; },
  }, 'Sign out');
  document.body.prepend(el('header.top', {},
    el('strong', {}, 'Chat & Books'),
    el('a', { href: '/chat.html' }, 'Chat'),
    el('a', { href: '/store.html' }, 'Store'),
    user.role === 'admin' ? el('a', { href: '/admin.html' }, 'Admin') : null,
    el('span.spacer'),
    ...extra,
    el('span', { id: 'me', dataset: { userId: user.id }, title: user.email }, user.display_name),
    logout));
}

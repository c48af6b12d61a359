// nav.js: the header every signed-in page shares (links, who, log out)
import { el } from './dom.js';

export function header(user, extra = []) {
  const logout = el('button', { id: 'logout', onclick: () => { sessionStorage.removeItem('token'); location.href = '/index.html'; } }, 'Log out');
  document.body.prepend(el('header.top', {},
    el('strong', {}, 'Chat & Books'),
    el('a', { href: '/chat.html' }, 'Chat'),
    el('a', { href: '/store.html' }, 'Store'),
    user.role === 'admin' ? el('a', { href: '/admin.html' }, 'Admin') : null,
    el('span.spacer'),
    ...extra,
    el('span', { id: 'me', dataset: { userId: user.id } }, `${user.display_name} (#${user.id})`),
    logout));
}

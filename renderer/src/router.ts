// Hash routes, so that the same build works from any base URL and the login fragment
// (`#login=...`) never collides with a page.
import { useEffect, useState } from 'react';

export type Route =
  | { name: 'dashboard' }
  | { name: 'orders'; attention: string; q: string }
  | { name: 'order-new' }
  | { name: 'order'; id: string }
  | { name: 'deliveries'; state: string }
  | { name: 'payments'; tab: 'all' | 'inbox' }
  | { name: 'products' }
  | { name: 'product-new' }
  | { name: 'product'; id: string }
  | { name: 'settings' }
  | { name: 'support' }
  | { name: 'customers' }
  | { name: 'workers' }
  | { name: 'customer'; email: string }
  | { name: 'not-found' };

export function parseRoute(hash: string): Route {
  const raw = hash.replace(/^#\/?/, '');
  const [path = '', qs = ''] = raw.split('?');
  const params = new URLSearchParams(qs);
  // `#login=<code>` is the sign-in link; the app shows the dashboard once it is redeemed.
  if (raw.startsWith('login=')) return { name: 'dashboard' };
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  switch (parts[0]) {
    case undefined:
    case 'dashboard':
      return { name: 'dashboard' };
    case 'orders':
      if (!parts[1]) return { name: 'orders', attention: params.get('attention') ?? '', q: params.get('q') ?? '' };
      return parts[1] === 'new' ? { name: 'order-new' } : { name: 'order', id: parts[1] };
    case 'deliveries':
      return { name: 'deliveries', state: params.get('state') ?? '' };
    case 'payments':
      return { name: 'payments', tab: parts[1] === 'inbox' ? 'inbox' : 'all' };
    case 'products':
      if (!parts[1]) return { name: 'products' };
      return parts[1] === 'new' ? { name: 'product-new' } : { name: 'product', id: parts[1] };
    case 'settings':
      return { name: 'settings' };
    case 'support':
      return { name: 'support' };
    case 'workers':
      return { name: 'workers' };
    case 'customers':
      return parts[1] ? { name: 'customer', email: parts[1] } : { name: 'customers' };
    default:
      return { name: 'not-found' };
  }
}

export function navigate(path: string): void {
  const target = '#' + (path.startsWith('/') ? path : '/' + path);
  if (location.hash !== target) location.hash = target;
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const on = () => setRoute(parseRoute(location.hash));
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return route;
}

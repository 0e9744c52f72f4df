import { useCallback, type ReactNode } from 'react';
import { session } from '../api/client';
import { payments } from '../api/endpoints';
import { useAsync, useLiveRefresh, useLiveStatus } from '../hooks';
import { useI18n, type MessageKey } from '../i18n';
import type { Route } from '../router';

const NAV: { to: string; key: MessageKey; match: Route['name'][] }[] = [
  { to: '/', key: 'nav.dashboard', match: ['dashboard'] },
  { to: '/orders', key: 'nav.orders', match: ['orders', 'order', 'order-new'] },
  { to: '/deliveries', key: 'nav.deliveries', match: ['deliveries'] },
  { to: '/payments', key: 'nav.payments', match: ['payments'] },
  { to: '/products', key: 'nav.products', match: ['products', 'product', 'product-new'] },
  { to: '/settings', key: 'nav.settings', match: ['settings'] },
  { to: '/support', key: 'nav.support', match: ['support'] },
];

export function Layout({ route, children }: { route: Route; children: ReactNode }) {
  const { t, tn, lang, setLang } = useI18n();
  const status = useLiveStatus();
  const inbox = useAsync(() => payments.list({ unmatched: true, limit: 1, offset: 0 }), []);
  const reloadInbox = useCallback(() => inbox.reload(), [inbox.reload]); // eslint-disable-line react-hooks/exhaustive-deps
  useLiveRefresh(['payment'], reloadInbox, { debounceMs: 500 });
  const unmatched = inbox.data?.total ?? 0;

  return (
    <div className="app">
      <nav className="sidebar" aria-label={t('nav.label')}>
        <div className="brand">driveship</div>
        <ul>
          {NAV.map((n) => (
            <li key={n.to}>
              <a href={`#${n.to}`} className={n.match.includes(route.name) ? 'active' : ''} data-nav={n.to}>
                {t(n.key)}
                {n.to === '/payments' && unmatched > 0 ? (
                  <span className="nav-count" title={tn('payments.inboxCount', unmatched)}>
                    {unmatched}
                  </span>
                ) : null}
              </a>
            </li>
          ))}
        </ul>
        <div className="sidebar-foot">
          <div className={`live live-${status}`} title={t(`live.${status}`)}>
            <span className="dot" /> {t(`live.${status}`)}
          </div>
          <div className="lang-switch" role="group" aria-label={t('settings.uiLanguage')}>
            <button type="button" className={lang === 'vi' ? 'active' : ''} onClick={() => setLang('vi')} data-lang="vi">
              VI
            </button>
            <button type="button" className={lang === 'en' ? 'active' : ''} onClick={() => setLang('en')} data-lang="en">
              EN
            </button>
          </div>
          <button type="button" className="btn btn-small btn-ghost signout" onClick={() => session.clear()}>
            {t('action.signOut')}
          </button>
        </div>
      </nav>
      <main className="content">{children}</main>
    </div>
  );
}

import { useCallback, useEffect, useState, type ReactNode } from 'react';
import { payments } from '../api/endpoints';
import { useAsync, useLiveRefresh, useLiveStatus } from '../hooks';
import { useI18n, type MessageKey } from '../i18n';
import type { Route } from '../router';

const NAV: { to: string; key: MessageKey; match: Route['name'][] }[] = [
  { to: '/', key: 'nav.dashboard', match: ['dashboard'] },
  { to: '/orders', key: 'nav.orders', match: ['orders', 'order', 'order-new'] },
  { to: '/deliveries', key: 'nav.deliveries', match: ['deliveries'] },
  { to: '/payments', key: 'nav.payments', match: ['payments'] },
  { to: '/customers', key: 'nav.customers', match: ['customers', 'customer'] },
  { to: '/products', key: 'nav.products', match: ['products', 'product', 'product-new'] },
  { to: '/workers', key: 'nav.workers', match: ['workers'] },
  { to: '/settings', key: 'nav.settings', match: ['settings'] },
  { to: '/support', key: 'nav.support', match: ['support'] },
];

const NAV_ICONS: Record<string, string> = {
  '/': '◧',
  '/orders': '≡',
  '/deliveries': '⇅',
  '/payments': '₫',
  '/customers': '☺',
  '/products': '▦',
  '/workers': '⛭',
  '/settings': '⚙',
  '/support': '?',
};

const COLLAPSED_KEY = 'driveship.sidebar';

/** The sidebar folds to icons (remembered on this computer); below 1100 px it starts folded. */
function useCollapsed(): [boolean, () => void] {
  const [collapsed, setCollapsed] = useState<boolean>(() => {
    try {
      const saved = localStorage.getItem(COLLAPSED_KEY);
      if (saved === '1' || saved === '0') return saved === '1';
    } catch {
      /* storage unavailable */
    }
    return false;
  });
  useEffect(() => {
    try {
      localStorage.setItem(COLLAPSED_KEY, collapsed ? '1' : '0');
    } catch {
      /* storage unavailable */
    }
  }, [collapsed]);
  return [collapsed, () => setCollapsed((c) => !c)];
}

export function Layout({ route, children, onSignOut }: { route: Route; children: ReactNode; onSignOut: () => void }) {
  const { t, tn, lang, setLang } = useI18n();
  const [collapsed, toggle] = useCollapsed();
  const status = useLiveStatus();
  const inbox = useAsync(() => payments.list({ unmatched: true, limit: 1, offset: 0 }), []);
  const reloadInbox = useCallback(() => inbox.reload(), [inbox.reload]); // eslint-disable-line react-hooks/exhaustive-deps
  useLiveRefresh(['payment'], reloadInbox, { debounceMs: 500 });
  const unmatched = inbox.data?.total ?? 0;

  return (
    <div className={`app ${collapsed ? 'app-collapsed' : ''}`}>
      <nav className="sidebar" aria-label={t('nav.label')} data-collapsed={collapsed ? '1' : '0'}>
        <div className="brand-row">
          <div className="brand">{collapsed ? 'ds' : 'driveship'}</div>
          <button type="button" className="collapse" onClick={toggle} aria-expanded={!collapsed} aria-label={collapsed ? t('nav.expand') : t('nav.collapse')} title={collapsed ? t('nav.expand') : t('nav.collapse')} data-action="toggle-sidebar">
            {collapsed ? '»' : '«'}
          </button>
        </div>
        <ul>
          {NAV.map((n) => (
            <li key={n.to}>
              <a href={`#${n.to}`} className={n.match.includes(route.name) ? 'active' : ''} data-nav={n.to} title={collapsed ? t(n.key) : undefined} aria-label={collapsed ? t(n.key) : undefined}>
                <span className="nav-icon" aria-hidden="true">
                  {NAV_ICONS[n.to]}
                </span>
                <span className="nav-text">{t(n.key)}</span>
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
            <span className="dot" /> <span className="nav-text">{t(`live.${status}`)}</span>
          </div>
          <div className="lang-switch" role="group" aria-label={t('settings.uiLanguage')}>
            <button type="button" className={lang === 'vi' ? 'active' : ''} onClick={() => setLang('vi')} data-lang="vi">
              VI
            </button>
            <button type="button" className={lang === 'en' ? 'active' : ''} onClick={() => setLang('en')} data-lang="en">
              EN
            </button>
          </div>
          <button type="button" className="btn btn-small btn-ghost signout" onClick={onSignOut} data-action="sign-out" title={t('action.signOutHint')}>
            {collapsed ? '⏻' : t('action.signOut')}
          </button>
        </div>
      </nav>
      <main className="content">{children}</main>
    </div>
  );
}

import { useEffect, useState } from 'react';
import { redeemLogin, session } from './api/client';
import { live } from './api/live';
import { Layout } from './components/Layout';
import { ErrorNote } from './components/ui';
import { I18nProvider, useI18n } from './i18n';
import { CustomerPage } from './pages/Customer';
import { CustomersPage } from './pages/Customers';
import { DashboardPage } from './pages/Dashboard';
import { DeliveriesPage } from './pages/Deliveries';
import { OrderPage } from './pages/OrderDetail';
import { OrderNewPage } from './pages/OrderNew';
import { OrdersPage } from './pages/Orders';
import { PaymentsPage } from './pages/Payments';
import { ProductsPage, ProductEditPage } from './pages/Products';
import { SettingsPage } from './pages/Settings';
import { SupportPage } from './pages/Support';
import { WorkersPage } from './pages/Workers';
import { progressStore } from './progress';
import { useRoute, type Route } from './router';

type Auth = { state: 'checking' } | { state: 'signed-out'; error?: unknown; signedOut?: boolean } | { state: 'signed-in' };

const LOGIN_RE = /^#login=([A-Za-z0-9_-]+)/;
// Redeemed at most once per page load, even if the component mounts twice.
let pendingLogin: Promise<void> | null = null;

function takeLoginFromUrl(): string | null {
  const m = LOGIN_RE.exec(location.hash);
  if (!m) return null;
  // The code is a credential: take it out of the address bar and history right away.
  history.replaceState(null, '', `${location.pathname}${location.search}#/`);
  return m[1]!;
}

/**
 * Signed in by the one-time link, or still signed in from before (the session cookie outlives a
 * reload and a restart of driveship); signed out only by "Sign out" or an expired session.
 */
function useAuth(): [Auth, (code: string) => void, () => void] {
  const [auth, setAuth] = useState<Auth>({ state: 'checking' });
  const redeem = (code: string) => {
    setAuth({ state: 'checking' });
    pendingLogin = redeemLogin(code);
    pendingLogin.then(
      () => setAuth({ state: 'signed-in' }),
      // A spent link in a window that is still signed in is no problem: carry on.
      (error: unknown) => void session.check().then((ok) => setAuth(ok ? { state: 'signed-in' } : { state: 'signed-out', error }), () => setAuth({ state: 'signed-out', error })),
    );
  };
  useEffect(() => {
    const code = takeLoginFromUrl();
    if (code) redeem(code);
    else if (pendingLogin) pendingLogin.then(() => setAuth({ state: 'signed-in' }), (error: unknown) => setAuth({ state: 'signed-out', error }));
    else session.check().then((ok) => setAuth(ok ? { state: 'signed-in' } : { state: 'signed-out' }), (error: unknown) => setAuth({ state: 'signed-out', error }));
    return session.subscribe((signedIn) => setAuth(signedIn ? { state: 'signed-in' } : { state: 'signed-out' }));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  const signOut = () => {
    void session.signOut().then(() => setAuth({ state: 'signed-out', signedOut: true }));
  };
  return [auth, redeem, signOut];
}

function Page({ route }: { route: Route }) {
  switch (route.name) {
    case 'dashboard':
      return <DashboardPage />;
    case 'orders':
      return <OrdersPage attention={route.attention} initialQuery={route.q} />;
    case 'order-new':
      return <OrderNewPage />;
    case 'order':
      return <OrderPage id={route.id} />;
    case 'deliveries':
      return <DeliveriesPage state={route.state} />;
    case 'payments':
      return <PaymentsPage tab={route.tab} />;
    case 'products':
      return <ProductsPage />;
    case 'product-new':
      return <ProductEditPage id={null} />;
    case 'product':
      return <ProductEditPage id={route.id} />;
    case 'settings':
      return <SettingsPage />;
    case 'support':
      return <SupportPage />;
    case 'customers':
      return <CustomersPage />;
    case 'workers':
      return <WorkersPage />;
    case 'customer':
      return <CustomerPage email={route.email} />;
    case 'not-found':
      return <NotFound />;
  }
}

function NotFound() {
  const { t } = useI18n();
  return (
    <div className="empty">
      <h3>{t('notFound.title')}</h3>
      <a className="btn" href="#/">
        {t('nav.dashboard')}
      </a>
    </div>
  );
}

function SignIn({ error, signedOut, onCode }: { error?: unknown; signedOut?: boolean; onCode: (code: string) => void }) {
  const { t, lang, setLang } = useI18n();
  const [link, setLink] = useState('');
  const submit = () => {
    const m = /login=([A-Za-z0-9_-]+)/.exec(link.trim());
    const code = m ? m[1]! : link.trim();
    if (code) onCode(code);
  };
  return (
    <main className="signin">
      <div className="signin-card">
        <div className="brand brand-large">driveship</div>
        <h1>{t('signin.title')}</h1>
        {signedOut ? <p className="ok-text" data-signed-out>{t('signin.signedOut')}</p> : null}
        <p>{t('signin.body')}</p>
        <pre className="signin-sample">npm run login-link</pre>
        <p className="muted small">{t('signin.bodyMore')}</p>
        {error ? <ErrorNote error={error} /> : null}
        <form
          className="signin-form"
          onSubmit={(e) => {
            e.preventDefault();
            submit();
          }}
        >
          <label htmlFor="signin-link">{t('signin.paste')}</label>
          <div className="row">
            <input id="signin-link" value={link} onChange={(e) => setLink(e.target.value)} placeholder="http://127.0.0.1:4710/#login=…" autoComplete="off" />
            <button className="btn btn-primary" type="submit" disabled={!link.trim()}>
              {t('signin.submit')}
            </button>
          </div>
        </form>
        <div className="lang-switch">
          <button type="button" className={lang === 'vi' ? 'active' : ''} onClick={() => setLang('vi')}>
            Tiếng Việt
          </button>
          <button type="button" className={lang === 'en' ? 'active' : ''} onClick={() => setLang('en')}>
            English
          </button>
        </div>
      </div>
    </main>
  );
}

function Shell() {
  const [auth, redeem, signOut] = useAuth();
  const route = useRoute();
  const signedIn = auth.state === 'signed-in';
  useEffect(() => {
    if (!signedIn) return;
    live.start();
    progressStore.start();
    return () => {
      live.stop();
      progressStore.stop();
    };
  }, [signedIn]);

  if (auth.state === 'checking') return <div className="loading loading-full">…</div>;
  if (auth.state === 'signed-out') return <SignIn error={auth.error} signedOut={auth.signedOut} onCode={redeem} />;
  return (
    <Layout route={route} onSignOut={signOut}>
      <Page key={route.name === 'order' || route.name === 'product' ? `${route.name}:${route.id}` : route.name === 'customer' ? `customer:${route.email}` : route.name === 'orders' ? `orders:${route.attention}` : route.name} route={route} />
    </Layout>
  );
}

export function App() {
  return (
    <I18nProvider>
      <Shell />
    </I18nProvider>
  );
}

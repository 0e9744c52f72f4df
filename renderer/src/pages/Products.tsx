import { useCallback, useEffect, useState } from 'react';
import { ProductCreateSchema, type DeliveryMode, type SourceCheckDto, type SourceConfig } from '../../../main/core/contract';
import { parseVndInput } from '../../../main/core/money';
import { products, type Product } from '../api/endpoints';
import { ProductAfterSale } from '../components/ProductAfterSale';
import { Badge, Card, EmptyState, ErrorNote, Field, Loading, Notice, PageHeader } from '../components/ui';
import { errorMessage, isRouteMissing } from '../errors';
import { useAsync, useLiveRefresh } from '../hooks';
import { useI18n, type MessageKey } from '../i18n';
import { navigate } from '../router';

type Kind = SourceConfig['kind'];
// Most natural first: files on this computer; a manifest of web links is for the technical.
const KINDS: Kind[] = ['local-folder', 'drive-folder', 'http-manifest'];

/** A product's created confirmation, carried across the navigation to its page. */
let justCreated: { id: string; name: string } | null = null;

/** What looking at the source found, or what is wrong with it, in the owner's words. */
export function SourceCheck({ check, busy }: { check: SourceCheckDto | null | undefined; busy?: boolean }) {
  const { t, tx, fmt, tn } = useI18n();
  if (busy) return <div className="muted small" data-check="busy">{t('products.checking')}</div>;
  if (!check) return null;
  if (check.ok) {
    return (
      <div className="check-ok small" data-check="ok">
        <Badge tone="success">{t('products.checkOk')}</Badge> {tn('products.checkFiles', check.files)} · {fmt.bytes(check.bytes)}
        {check.unknownSizes ? ` · ${t('products.checkUnknownSizes', { n: check.unknownSizes })}` : ''}
        {check.probed && check.probed.checked < check.probed.total ? ` · ${t('products.checkProbed', check.probed)}` : ''}
        {check.sample.length ? <div className="muted ellipsis">{check.sample.join(', ')}</div> : null}
        <Unreachable check={check} />
      </div>
    );
  }
  const p = check.problem!;
  return (
    <div className="check-problem small" data-check="problem" data-problem={p.code} role="alert">
      <Badge tone="danger">{t('products.checkProblem')}</Badge> {tx(`sourceProblem.${p.code}`, tx(`deliveryError.${p.code}`, p.message))}
      {check.missing?.length ? (
        <ul className="check-files" data-missing={check.missing.length}>
          {check.missing.slice(0, 10).map((m) => (
            <li key={m.path}>
              <code>{m.path}</code> ({m.status})
            </li>
          ))}
        </ul>
      ) : null}
      <Unreachable check={check} />
      <div className="muted">{t('products.checkProblemHint')}</div>
    </div>
  );
}

/** Files the origin could not be asked about: not a verdict, but worth a look. */
function Unreachable({ check }: { check: SourceCheckDto }) {
  const { t } = useI18n();
  if (!check.unreachable?.length) return null;
  return (
    <div className="muted" data-unreachable={check.unreachable.length}>
      {t('products.checkUnreachable', { n: check.unreachable.length })}{' '}
      {check.unreachable.slice(0, 3).map((u) => `${u.path}: ${u.message}`).join('; ')}
    </div>
  );
}

function PrepareOutcome({ p }: { p: Product }) {
  const { t, tx, fmt } = useI18n();
  const o = p.prepare;
  if (!o || o.state === 'done') return null;
  if (o.state === 'running') return <div className="muted small">{t('products.prepareStarted')}</div>;
  return (
    <div className="error-text small" data-prepare="failed" role="alert">
      {t('products.prepareFailed', { when: fmt.relative(o.at) })} {tx(`sourceProblem.${o.code ?? ''}`, tx(`deliveryError.${o.code ?? ''}`, o.message ?? o.code ?? ''))}
    </div>
  );
}

function sourceSummary(s: SourceConfig): string {
  switch (s.kind) {
    case 'http-manifest':
      return s.manifestUrl;
    case 'local-folder':
      return s.path;
    case 'drive-folder':
      return s.folderId;
  }
}

function LibraryBadge({ lib }: { lib: Product['library'] }) {
  const { t, fmt } = useI18n();
  if (!lib) return <span className="muted small">{t('library.unknown')}</span>;
  const tone = lib.state === 'in_drive' ? 'success' : lib.state === 'cached' ? 'info' : lib.state === 'none' ? 'neutral' : 'warning';
  return (
    <span data-library={lib.state}>
      <Badge tone={tone}>{t(`library.${lib.state}`)}</Badge>
      {lib.bytes ? <span className="muted small"> {fmt.bytes(lib.bytes)}</span> : null}
    </span>
  );
}

function PrepareButton({ p, onDone }: { p: Product; onDone: () => void }) {
  const i18n = useI18n();
  const [state, setState] = useState<'idle' | 'busy' | 'done'>('idle');
  const [error, setError] = useState<string | null>(null);
  if (p.library && p.library.state !== 'none') return null;
  if (p.prepare?.state === 'running') return null;
  return (
    <>
      <button
        type="button"
        className="btn btn-small"
        disabled={state !== 'idle'}
        onClick={() => {
          setState('busy');
          setError(null);
          products.prepare(p.id).then(
            () => {
              setState('done');
              onDone();
            },
            (e: unknown) => {
              setState('idle');
              setError(isRouteMissing(e) ? i18n.t('products.prepareMissing') : errorMessage(i18n, e));
            },
          );
        }}
        title={i18n.t('products.prepareHint')}
      >
        {state === 'done' ? i18n.t('products.prepareStarted') : p.prepare?.state === 'failed' ? i18n.t('products.prepareAgain') : i18n.t('products.prepare')}
      </button>
      {error ? <div className="error-text small">{error}</div> : null}
    </>
  );
}

export function ProductsPage() {
  const i18n = useI18n();
  const { t, fmt } = i18n;
  const [archived, setArchived] = useState(false);
  const list = useAsync(() => products.list(archived), [archived]);
  const reload = useCallback(() => list.reload(), [list.reload]); // eslint-disable-line react-hooks/exhaustive-deps
  useLiveRefresh(['delivery', 'alert', 'product'], reload, { debounceMs: 500 });
  const items = list.data ?? [];
  const problems = items.filter((p) => p.check && !p.check.ok && !p.archived).length;

  return (
    <div className="page" data-page="products">
      <PageHeader
        title={t('products.title')}
        subtitle={t('products.subtitle')}
        actions={
          <a className="btn btn-primary" href="#/products/new" data-action="new-product">
            {t('products.new')}
          </a>
        }
      />
      <label className="check inline">
        <input type="checkbox" checked={archived} onChange={(e) => setArchived(e.target.checked)} /> {t('products.showArchived')}
      </label>
      {list.error ? <ErrorNote error={list.error} onRetry={list.reload} /> : null}
      {problems ? <Notice tone="warning">{i18n.tn('products.problemsNotice', problems)}</Notice> : null}
      {!list.data && !list.error ? (
        <Loading />
      ) : items.length === 0 ? (
        <EmptyState
          title={t('products.empty')}
          action={
            <a className="btn btn-primary" href="#/products/new">
              {t('products.new')}
            </a>
          }
        >
          {t('products.emptyBody')}
        </EmptyState>
      ) : (
        <div className="table-wrap">
          <table className="table">
            <thead>
              <tr>
                <th>{t('field.name')}</th>
                <th className="num">{t('field.priceVnd')}</th>
                <th>{t('field.source')}</th>
                <th>{t('products.library')}</th>
                <th className="actions-col" />
              </tr>
            </thead>
            <tbody>
              {items.map((p) => (
                <tr key={p.id} data-product={p.name}>
                  <td>
                    <a href={`#/products/${p.id}`}>
                      <strong>{p.name}</strong>
                    </a>
                    {p.archived ? (
                      <>
                        {' '}
                        <Badge>{t('products.archived')}</Badge>
                      </>
                    ) : null}
                  </td>
                  <td className="num nowrap">{fmt.vnd(p.priceVnd)}</td>
                  <td className="source-cell">
                    <div>
                      {t(`source.${p.source.kind}`)} · <span className="muted">{t(`deliveryMode.${p.delivery}`)}</span>
                    </div>
                    <div className="muted small ellipsis source-detail" title={sourceSummary(p.source)}>
                      {sourceSummary(p.source)}
                    </div>
                    <SourceCheck check={p.check} />
                  </td>
                  <td>
                    <LibraryBadge lib={p.library} />
                    <PrepareOutcome p={p} />
                  </td>
                  <td className="actions-cell">
                    <PrepareButton p={p} onDone={list.reload} />{' '}
                    <a className="btn btn-small btn-ghost" href={`#/products/${p.id}`}>
                      {t('action.edit')}
                    </a>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}

type Errors = Partial<Record<'name' | 'priceVnd' | 'source' | 'accessDays', MessageKey>>;

export function ProductEditPage({ id }: { id: string | null }) {
  const i18n = useI18n();
  const { t, fmt } = i18n;
  const existing = useAsync(async () => (id ? products.get(id) : null), [id]);
  const [name, setName] = useState('');
  const [price, setPrice] = useState('');
  const [kind, setKind] = useState<Kind>('local-folder');
  const [sourceValue, setSourceValue] = useState<Record<Kind, string>>({ 'http-manifest': '', 'local-folder': '', 'drive-folder': '' });
  const [mode, setMode] = useState<DeliveryMode>('private-copy');
  const [privateNetwork, setPrivateNetwork] = useState(false);
  const [accessDays, setAccessDays] = useState('');
  const [errors, setErrors] = useState<Errors>({});
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [saved, setSaved] = useState(false);
  const [check, setCheck] = useState<SourceCheckDto | null>(null);
  const [checking, setChecking] = useState(false);
  const created = id && justCreated?.id === id ? justCreated : null;
  const live = useCallback(() => existing.reload(), [existing.reload]); // eslint-disable-line react-hooks/exhaustive-deps
  useLiveRefresh(['product'], live, { debounceMs: 300, filter: (_t, e) => e.productId === id });

  useEffect(() => {
    const p = existing.data;
    if (!p) return;
    setName(p.name);
    setPrice(String(p.priceVnd));
    setKind(p.source.kind);
    setSourceValue((cur) => ({ ...cur, [p.source.kind]: sourceSummary(p.source) }));
    setMode(p.delivery);
    setPrivateNetwork(p.source.kind === 'http-manifest' && !!p.source.privateNetwork);
    setAccessDays(p.accessDays ? String(p.accessDays) : '');
  }, [existing.data]);

  const source = (): SourceConfig => {
    const v = sourceValue[kind].trim();
    if (kind === 'http-manifest') return privateNetwork ? { kind, manifestUrl: v, privateNetwork } : { kind, manifestUrl: v };
    if (kind === 'local-folder') return { kind, path: v };
    return { kind, folderId: v };
  };

  // "299k", "1.2tr", "1.200.000" all mean what the owner means.
  const priceNum = parseVndInput(price) ?? NaN;

  const checkNow = async () => {
    const src = ProductCreateSchema.shape.source.safeParse(source());
    if (!src.success) {
      setErrors((e) => ({ ...e, source: `products.err.${kind}` }));
      return;
    }
    setChecking(true);
    try {
      setCheck(await products.checkSource(src.data));
    } catch (e) {
      setError(e);
    } finally {
      setChecking(false);
    }
  };

  const save = async () => {
    const body = {
      name: name.trim(),
      priceVnd: price.trim() === '' ? NaN : priceNum,
      source: source(),
      delivery: mode,
      accessDays: accessDays.trim() ? Number(accessDays) : null,
    };
    const v = ProductCreateSchema.safeParse(body);
    if (!v.success) {
      const e: Errors = {};
      for (const issue of v.error.issues) {
        const f = issue.path[0];
        if (f === 'name') e.name = 'products.err.name';
        else if (f === 'priceVnd') e.priceVnd = 'products.err.price';
        else if (f === 'source') e.source = `products.err.${kind}`;
        else if (f === 'accessDays') e.accessDays = 'products.err.accessDays';
      }
      setErrors(e);
      return;
    }
    setErrors({});
    setBusy(true);
    setError(null);
    setSaved(false);
    try {
      if (id) {
        const p = await products.update(id, v.data);
        if (p.check) setCheck(p.check);
        setSaved(true);
        existing.reload();
      } else {
        const p = await products.create(v.data);
        justCreated = { id: p.id, name: p.name };
        navigate(`/products/${p.id}`);
      }
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  const setArchived = async (archived: boolean) => {
    if (!id) return;
    setBusy(true);
    setError(null);
    try {
      await products.update(id, { archived });
      existing.reload();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  if (id && existing.error && !existing.data) {
    return (
      <div className="page" data-page="product">
        <PageHeader title={t('products.edit')} />
        <ErrorNote error={existing.error} onRetry={existing.reload} />
      </div>
    );
  }
  if (id && !existing.data) return <Loading />;
  const p = existing.data;

  return (
    <div className="page" data-page={id ? 'product' : 'product-new'}>
      <PageHeader
        title={id ? t('products.edit') : t('products.new')}
        subtitle={p ? p.name : t('products.newSubtitle')}
        actions={
          <a className="btn btn-ghost" href="#/products">
            {t('products.back')}
          </a>
        }
      />
      {created && p ? (
        <Notice tone={p.check?.ok === false ? 'warning' : 'success'}>
          <span data-created>{p.check?.ok === false ? t('products.createdWithProblem', { name: created.name }) : t('products.created', { name: created.name })}</span>
        </Notice>
      ) : null}
      <form
        className="form"
        noValidate
        onSubmit={(e) => {
          e.preventDefault();
          void save();
        }}
      >
        <Card title={t('products.basics')}>
          <div className="form-grid">
            <Field label={t('field.name')} htmlFor="p-name" error={errors.name ? t(errors.name) : null}>
              <input id="p-name" value={name} onChange={(e) => setName(e.target.value)} placeholder={t('products.namePlaceholder')} />
            </Field>
            <Field
              label={t('field.priceVnd')}
              htmlFor="p-price"
              error={errors.priceVnd ? t(errors.priceVnd) : null}
              hint={Number.isFinite(priceNum) && price.trim() ? fmt.vnd(priceNum) : t('products.priceHint')}
            >
              <input id="p-price" inputMode="numeric" value={price} onChange={(e) => setPrice(e.target.value)} placeholder="199000, 199k, 1.2tr" />
            </Field>
            <Field label={t('field.accessDays')} htmlFor="p-days" hint={t('products.accessDaysHint')} error={errors.accessDays ? t(errors.accessDays) : null}>
              <input id="p-days" inputMode="numeric" value={accessDays} onChange={(e) => setAccessDays(e.target.value)} placeholder={t('products.forever')} />
            </Field>
          </div>
        </Card>

        <Card title={t('field.source')}>
          <div className="radio-cards">
            {KINDS.map((k) => (
              <label key={k} className={`radio-card ${kind === k ? 'active' : ''}`}>
                <input type="radio" name="kind" value={k} checked={kind === k} onChange={() => setKind(k)} />
                <strong>{t(`source.${k}`)}</strong>
                <span className="muted small">{t(`source.${k}.hint`)}</span>
              </label>
            ))}
          </div>
          <Field label={t(`source.${kind}.field`)} htmlFor="p-source" error={errors.source ? t(errors.source) : null}>
            <input
              id="p-source"
              value={sourceValue[kind]}
              onChange={(e) => setSourceValue((cur) => ({ ...cur, [kind]: e.target.value }))}
              placeholder={t(`source.${kind}.placeholder`)}
              className="mono"
            />
          </Field>
          {kind === 'http-manifest' ? (
            <label className="check">
              <input type="checkbox" id="p-private-network" checked={privateNetwork} onChange={(e) => setPrivateNetwork(e.target.checked)} />
              {t('source.http-manifest.privateNetwork')}
            </label>
          ) : null}
          <div className="row">
            <button type="button" className="btn btn-small" onClick={() => void checkNow()} disabled={checking || !sourceValue[kind].trim()} data-action="check-source">
              {t('products.checkNow')}
            </button>
            <span className="muted small">{t('products.checkHint')}</span>
          </div>
          <SourceCheck check={check ?? (p && p.source.kind === kind && sourceSummary(p.source) === sourceValue[kind].trim() ? p.check : null)} busy={checking} />
        </Card>

        <Card title={t('field.delivery')}>
          <div className="radio-cards">
            {(['private-copy', 'shared-library'] as const).map((m) => (
              <label key={m} className={`radio-card ${mode === m ? 'active' : ''}`}>
                <input type="radio" name="mode" value={m} checked={mode === m} onChange={() => setMode(m)} />
                <strong>{t(`deliveryMode.${m}`)}</strong>
                <span className="muted small">{t(`deliveryMode.${m}.hint`)}</span>
              </label>
            ))}
          </div>
        </Card>

        {p ? (
          <Card title={t('products.library')}>
            <p>
              <LibraryBadge lib={p.library} />
            </p>
            <p className="muted small">{t('products.libraryHint')}</p>
            <PrepareOutcome p={p} />
            <PrepareButton p={p} onDone={existing.reload} />
          </Card>
        ) : null}
        {p ? <ProductAfterSale product={p} onSaved={existing.reload} /> : null}

        {error ? <ErrorNote error={error} /> : null}
        {saved ? <Notice tone="success">{t('common.saved')}</Notice> : null}
        <div className="form-actions">
          <button type="submit" className="btn btn-primary" disabled={busy} data-action="save-product">
            {busy ? t('common.saving') : id ? t('action.save') : t('products.create')}
          </button>
          {p ? (
            <button type="button" className="btn btn-ghost" disabled={busy} onClick={() => void setArchived(!p.archived)}>
              {p.archived ? t('products.unarchive') : t('products.archive')}
            </button>
          ) : null}
        </div>
      </form>
    </div>
  );
}

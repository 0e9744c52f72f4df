// One-click actions on an order: open the customer's folder in Drive, copy its link (sending the
// email again is the after-sale card's), download the payment QR as a PNG (to send over Zalo or Messenger), retry a failed
// delivery; and, in the demo sandbox only, simulate the customer's bank transfer.
import { useState } from 'react';
import { parseVndInput } from '../../../main/core/money';
import type { OrderDetailDto } from '../../../main/core/contract';
import { connections, orders, type Delivery } from '../api/endpoints';
import { errorMessage } from '../errors';
import { useAsync } from '../hooks';
import { useI18n } from '../i18n';
import { Card, CopyButton, Notice } from './ui';

export const driveFolderUrl = (folderId: string) => `https://drive.google.com/drive/folders/${folderId}`;

/** Saves a data: URL (the order's QR PNG) as a file. */
export function downloadDataUrl(dataUrl: string, filename: string): void {
  const a = document.createElement('a');
  a.href = dataUrl;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
}

/** A delivered delivery: its folder in Drive and the link to send (resend, revoke, move: the after-sale card). */
export function DeliveredActions({ d }: { d: Delivery }) {
  const { t } = useI18n();
  if (d.state !== 'delivered' || !d.folderId) return null;
  const url = driveFolderUrl(d.folderId);
  return (
    <div className="actions order-actions" data-delivered-actions={d.id}>
      <a className="btn btn-small" href={url} target="_blank" rel="noopener noreferrer" data-action="open-folder">
        {t('orderActions.openFolder')}
      </a>
      <CopyButton text={url} label={t('orderActions.copyLink')} />
    </div>
  );
}

export function QrDownload({ png, code }: { png: string | null; code: string }) {
  const { t } = useI18n();
  if (!png) return null;
  return (
    <button type="button" className="btn btn-small" onClick={() => downloadDataUrl(png, `${code}-QR.png`)} data-action="download-qr">
      {t('orderActions.downloadQr')}
    </button>
  );
}

/**
 * The demo's "Simulate a bank transfer": shown only when the host runs against the sandbox, and
 * refused by the host otherwise. Any amount, to try an underpaid or overpaid order.
 */
export function SimulateTransfer({ o, onDone }: { o: OrderDetailDto; onDone: () => void }) {
  const i18n = useI18n();
  const { t, fmt } = i18n;
  const conn = useAsync(() => connections.get(), []);
  const due = Math.max(0, o.amountVnd - o.paidVnd);
  const [amount, setAmount] = useState(due > 0 ? String(due) : '');
  const [busy, setBusy] = useState(false);
  const [msg, setMsg] = useState<{ ok: boolean; text: string } | null>(null);
  if (!conn.data?.sandbox) return null;
  const value = parseVndInput(amount);
  const pay = async () => {
    if (value === null || value <= 0) {
      setMsg({ ok: false, text: t('simulate.badAmount') });
      return;
    }
    setBusy(true);
    setMsg(null);
    try {
      const r = await orders.simulatePayment(o.id, { amountVnd: value });
      setMsg({ ok: true, text: t('simulate.sent', { amount: fmt.vnd(r.amountVnd) }) });
      onDone();
    } catch (e) {
      setMsg({ ok: false, text: errorMessage(i18n, e) });
    } finally {
      setBusy(false);
    }
  };
  return (
    <Card title={t('simulate.title')} className="simulate">
      <p className="muted small">{t('simulate.intro')}</p>
      <div className="row">
        <label htmlFor="sim-amount" className="sr-only">
          {t('simulate.amount')}
        </label>
        <input id="sim-amount" className="short" inputMode="numeric" value={amount} onChange={(e) => setAmount(e.target.value)} placeholder={String(due || o.amountVnd)} />
        <button type="button" className="btn btn-primary" disabled={busy} onClick={() => void pay()} data-action="simulate-transfer">
          {busy ? t('common.saving') : t('simulate.button')}
        </button>
        <span className="muted small">{value !== null && amount.trim() ? fmt.vnd(value) : ''}</span>
      </div>
      {due > 0 ? (
        <div className="row small">
          <button type="button" className="linklike" onClick={() => setAmount(String(Math.max(1000, Math.round(due / 2))))}>
            {t('simulate.less')}
          </button>
          <button type="button" className="linklike" onClick={() => setAmount(String(due))}>
            {t('simulate.exact')}
          </button>
          <button type="button" className="linklike" onClick={() => setAmount(String(due * 2))}>
            {t('simulate.more')}
          </button>
        </div>
      ) : null}
      {msg ? <Notice tone={msg.ok ? 'success' : 'warning'}>{msg.text}</Notice> : null}
      {!conn.data.webhook.listening ? <Notice tone="warning">{t('simulate.noWebhook')}</Notice> : null}
      <p className="muted small">
        {t('simulate.cli')} <code className="mono">npm run pay -- {o.code} 100k</code> <CopyButton text={`npm run pay -- ${o.code}`} />
      </p>
    </Card>
  );
}

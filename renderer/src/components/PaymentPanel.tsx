// What the owner sends the customer: the VietQR image and the transfer details, each copyable.
import { useEffect, useState } from 'react';
import { toString as qrToSvg } from 'qrcode';
import type { SettingsDto } from '../../../main/core/contract';
import { buildVietQrPayload } from '../../../main/core/vietqr';
import { bankName } from '../banks';
import { useI18n } from '../i18n';
import { CopyButton, Notice } from './ui';

/** QR images of orders created in this window (the order page's API answer does not carry one). */
export const createdQr = new Map<string, string>();

function useQrImage(png: string | null | undefined, s: SettingsDto | undefined, code: string, amountVnd: number): string | null {
  const [svg, setSvg] = useState<string | null>(null);
  const bin = s?.bankBin;
  const account = s?.bankAccount;
  useEffect(() => {
    if (png || !bin || !account || amountVnd <= 0) return;
    let live = true;
    try {
      const payload = buildVietQrPayload({ bankBin: bin, accountNumber: account, amountVnd, description: code });
      qrToSvg(payload, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 }).then(
        (s) => live && setSvg(`data:image/svg+xml;charset=utf-8,${encodeURIComponent(s)}`),
        () => live && setSvg(null),
      );
    } catch {
      setSvg(null);
    }
    return () => {
      live = false;
    };
  }, [png, bin, account, code, amountVnd]);
  return png ?? svg;
}

export function PaymentPanel({ code, amountVnd, png, settings }: { code: string; amountVnd: number; png?: string | null; settings: SettingsDto | undefined }) {
  const { t, fmt } = useI18n();
  const qr = useQrImage(png, settings, code, amountVnd);
  const bank = settings?.bankBin ? `${bankName(settings.bankBin) ?? ''} (${settings.bankBin})`.trim() : null;
  const account = settings?.bankAccount ?? null;
  const holder = settings?.bankAccountName || null;
  const lines = [
    bank ? `${t('pay.bank')}: ${bank}` : null,
    account ? `${t('pay.account')}: ${account}` : null,
    holder ? `${t('pay.holder')}: ${holder}` : null,
    `${t('pay.amount')}: ${fmt.vnd(amountVnd)}`,
    `${t('pay.content')}: ${code}`,
  ].filter(Boolean);

  return (
    <div className="payment" data-payment={code}>
      <div className="qr">
        {qr ? (
          <img src={qr} alt={t('pay.qrAlt', { code })} width={220} height={220} data-qr="1" />
        ) : (
          <div className="qr-missing">
            <p>{t('pay.noQr')}</p>
            <a href="#/settings" className="btn btn-small">
              {t('setup.bank.cta')}
            </a>
          </div>
        )}
      </div>
      <div className="paytext">
        <dl>
          {bank ? (
            <div>
              <dt>{t('pay.bank')}</dt>
              <dd>{bank}</dd>
            </div>
          ) : null}
          {account ? (
            <div>
              <dt>{t('pay.account')}</dt>
              <dd>
                <span className="mono" data-pay="account">
                  {account}
                </span>{' '}
                <CopyButton text={account} />
              </dd>
            </div>
          ) : null}
          {holder ? (
            <div>
              <dt>{t('pay.holder')}</dt>
              <dd>{holder}</dd>
            </div>
          ) : null}
          <div>
            <dt>{t('pay.amount')}</dt>
            <dd>
              <strong data-pay="amount">{fmt.vnd(amountVnd)}</strong> <CopyButton text={String(amountVnd)} />
            </dd>
          </div>
          <div>
            <dt>{t('pay.content')}</dt>
            <dd>
              <strong className="mono" data-pay="content">
                {code}
              </strong>{' '}
              <CopyButton text={code} />
            </dd>
          </div>
        </dl>
        {!account ? <Notice tone="warning">{t('pay.noAccount')}</Notice> : null}
        <p className="muted small">{t('pay.hint')}</p>
        <CopyButton text={lines.join('\n')} label={t('pay.copyAll')} />
      </div>
    </div>
  );
}

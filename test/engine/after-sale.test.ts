// After the sale, end to end through the sandbox: real listeners and worker threads, the real
// googleapis client against the Drive emulator, the SMTP sink, the admin API over HTTP.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { makeTransaction } from '../../sandbox/sepay/sender';
import { ACCOUNT, manifestProduct, startShop, type Shop } from '../helpers/shop';

const KiB = 1024;

describe('after the sale, end to end', () => {
  let shop: Shop;
  before(async () => {
    shop = await startShop({ env: { DRIVESHIP_SHARING_BACKOFF_SEC: '1' } });
  });
  after(async () => {
    await shop?.close();
  });

  const api = async <T = any>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> => {
    const res = await request(shop.core.adminUrl.replace(/\/$/, '') + '/api/v1' + path, {
      method: method as 'GET',
      headers: { authorization: `Bearer ${shop.core.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.body.text();
    return { status: res.statusCode, body: text ? JSON.parse(text) : undefined };
  };
  const drive = () => shop.sandbox.drive;
  const delivery = (orderId: string) => shop.core.store.deliveries.getRow(shop.core.store.deliveries.forOrder(orderId)[0]!.id)!;
  const actionDone = async (orderId: string) => {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const r = await api('GET', `/orders/${orderId}/actions`);
      const last = r.body.items.at(-1);
      if (last?.state === 'done') return last;
      if (Date.now() > deadline) assert.fail(`action not done: ${JSON.stringify(last)}`);
      await new Promise((res) => setTimeout(res, 50));
    }
  };
  const mailsTo = (email: string) => shop.sandbox.smtp.messages().filter((m) => m.to.includes(email));

  it('revoke after a private copy: permission gone, folder trashed, order revoked with its payments, audit says who and why; again is a no-op', async () => {
    const { product } = manifestProduct(shop, 'Khoá học hoàn tiền', 2, 64 * KiB);
    const id = await shop.orderAndPay([product.id], 'refund@example.com');
    await shop.until([id]);
    const folder = delivery(id).folder_id!;
    assert.ok(drive().hasAccess(folder, 'refund@example.com'));

    const bad = await api('POST', `/orders/${id}/revoke`, { reason: 'x'.repeat(501) });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'INVALID_INPUT');
    assert.equal(shop.core.store.orders.get(id)!.status, 'delivered', 'bad input changes nothing');
    const missing = await api('POST', '/orders/ord_nope/revoke', {});
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'ORDER_NOT_FOUND');

    const r = await api('POST', `/orders/${id}/revoke`, { reason: 'Khách yêu cầu hoàn tiền' });
    assert.equal(r.status, 202);
    assert.equal(r.body.kind, 'revoke');
    const done = await actionDone(id);
    assert.equal(done.steps[0].outcome, 'revoked');
    assert.equal(done.steps[0].trashed, true);
    assert.ok(!drive().hasAccess(folder, 'refund@example.com'), 'no access any more');
    assert.equal(drive().permissions(folder).filter((p) => p.emailAddress === 'refund@example.com').length, 0);
    assert.equal(drive().file(folder)!.trashed, true, 'the private folder is in the trash');
    const order = (await api('GET', `/orders/${id}`)).body;
    assert.equal(order.status, 'revoked');
    assert.equal(order.payments.length, 1, 'the payment stays in the books');
    assert.equal(order.paidVnd, 100000);
    const audit = shop.core.store.audit.recent().find((a) => a.action === 'order.revoke' && a.target === id)!;
    assert.equal(audit.actor, 'owner');
    assert.equal((audit.detail as { reason: string }).reason, 'Khách yêu cầu hoàn tiền');

    const again = await api('POST', `/orders/${id}/revoke`, { reason: 'again' });
    assert.equal(again.status, 202);
    assert.equal(again.body.id, r.body.id, 'revoking twice answers with the first revocation');
    assert.equal(shop.core.store.accessActions.forOrder(id).length, 1);
    // A late transfer for a revoked order does not reopen it.
    await shop.sender.send(makeTransaction({ accountNumber: ACCOUNT, content: `CK ${order.code}`, transferAmount: 100000, code: null }));
    assert.equal(shop.core.store.orders.get(id)!.status, 'revoked');
  });

  it('revoke after a shared library: the permission on the library folder goes; other buyers and the same buyer\'s other live order keep it', async () => {
    const { product } = manifestProduct(shop, 'Template dùng chung', 1, 32 * KiB, 'shared-library');
    const a = await shop.orderAndPay([product.id], 'a@example.com');
    const b = await shop.orderAndPay([product.id], 'b@example.com');
    await shop.until([a, b]);
    const lib = delivery(a).folder_id!;
    assert.equal(delivery(b).folder_id, lib);
    await api('POST', `/orders/${a}/revoke`, { reason: 'chargeback' });
    await actionDone(a);
    assert.ok(!drive().hasAccess(lib, 'a@example.com'));
    assert.ok(drive().hasAccess(lib, 'b@example.com'), 'another buyer keeps access');
    assert.ok(!drive().file(lib)!.trashed, 'the library folder is never trashed');

    // b bought it twice (the second one points at the access b has): revoking one keeps access.
    const b2 = await shop.orderAndPay([product.id], 'b@example.com');
    await shop.until([b2]);
    assert.equal(delivery(b2).delivered_via, 'existing');
    await api('POST', `/orders/${b}/revoke`, {});
    const done = await actionDone(b);
    assert.equal(done.steps[0].outcome, 'kept');
    assert.ok(drive().hasAccess(lib, 'b@example.com'), 'the live order still grants it');
  });

  it('a repeat purchase with live access gets no second copy: it points at the access and says so', async () => {
    const { product } = manifestProduct(shop, 'Mua lại', 2, 16 * KiB);
    const first = await shop.orderAndPay([product.id], 'again@example.com');
    await shop.until([first]);
    const copies0 = drive().counters.filesCopy;
    const second = await shop.orderAndPay([product.id], 'again@example.com');
    await shop.until([second]);
    assert.equal(drive().counters.filesCopy, copies0, 'no copy for the repeat purchase');
    const d2 = delivery(second);
    assert.equal(d2.delivered_via, 'existing');
    assert.equal(d2.folder_id, delivery(first).folder_id);
    assert.ok(shop.core.store.deliveries.events(d2.id).some((e) => e.type === 'existing_access'));
    const mails = mailsTo('again@example.com');
    assert.equal(mails.length, 2);
    assert.match(mails[1]!.text, /đã có quyền truy cập tài liệu này/);
  });

  it('resend sends the delivery email again; a wrong address is moved: the new one gets access, the old one loses it', async () => {
    const { product } = manifestProduct(shop, 'Gửi lại', 1, 16 * KiB);
    const id = await shop.orderAndPay([product.id], 'typo@exmaple.com');
    await shop.until([id]);
    const d = delivery(id);
    const r = await api('POST', `/deliveries/${d.id}/resend`, {});
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.to, 'typo@exmaple.com');
    assert.equal(mailsTo('typo@exmaple.com').length, 2);
    assert.match(mailsTo('typo@exmaple.com')[1]!.text, /Here again|gửi lại/);
    assert.equal((await api('POST', '/deliveries/dlv_nope/resend', {})).body.error.code, 'DELIVERY_NOT_FOUND');

    assert.equal((await api('POST', `/orders/${id}/move`, { email: 'not-an-email' })).body.error.code, 'INVALID_INPUT');
    assert.equal((await api('POST', `/orders/${id}/move`, { email: 'typo@exmaple.com' })).body.error.code, 'SAME_EMAIL');
    const m = await api('POST', `/orders/${id}/move`, { email: 'Right@Example.com', reason: 'khách gõ nhầm email' });
    assert.equal(m.status, 202);
    const done = await actionDone(id);
    assert.equal(done.steps[0].shared, true);
    assert.ok(drive().hasAccess(d.folder_id!, 'right@example.com'));
    assert.ok(!drive().hasAccess(d.folder_id!, 'typo@exmaple.com'));
    assert.equal(shop.core.store.orders.get(id)!.customerEmail, 'right@example.com');
    assert.equal(delivery(id).share_email, 'right@example.com');
    const moved = mailsTo('right@example.com');
    assert.equal(moved.length, 1);
    assert.match(moved[0]!.text, /drive\/folders\//);
    // The customer page finds the order by the new address.
    const c = await api('GET', `/customers/${encodeURIComponent('right@example.com')}`);
    assert.equal(c.status, 200);
    assert.deepEqual(c.body.orders.map((o: { id: string }) => o.id), [id]);
    assert.equal(c.body.access[0].state, 'live');
    assert.equal(c.body.actions[0].kind, 'move');
    assert.equal((await api('GET', '/customers/nobody%40example.com')).body.error.code, 'CUSTOMER_NOT_FOUND');
    assert.equal((await api('GET', '/customers/not-an-email')).status, 400);
    // The customer list finds them by a part of the address, whatever the case.
    const list = await api('GET', '/customers?q=RIGHT%40exa');
    assert.equal(list.status, 200);
    assert.deepEqual(list.body.items.map((x: { email: string; orders: number }) => [x.email, x.orders]), [['right@example.com', 1]]);
    assert.equal(list.body.total, 1);
    assert.equal((await api('GET', '/customers?limit=0')).body.error.code, 'INVALID_INPUT');
  });

  it('sharing controls: readers cannot download, print or copy; access ends by itself at the access days', async () => {
    const priv = manifestProduct(shop, 'Bảo vệ', 1, 16 * KiB);
    shop.core.shop.updateProduct(priv.product.id, { restrictDownloads: true, accessDays: 30 });
    const shared = manifestProduct(shop, 'Bảo vệ chung', 2, 16 * KiB, 'shared-library');
    shop.core.shop.updateProduct(shared.product.id, { restrictDownloads: true, accessDays: 400 });
    const a = await shop.orderAndPay([priv.product.id], 'ctl@example.com');
    const b = await shop.orderAndPay([shared.product.id], 'ctl2@example.com');
    await shop.until([a, b]);
    const copy = drive().files().find((f) => f.parents.includes(delivery(a).folder_id!) && f.name === 'part-1.bin')!;
    assert.equal(copy.copyRequiresWriterPermission, true);
    assert.equal(copy.downloadRestrictions?.itemDownloadRestriction?.restrictedForReaders, true);
    const perm = drive().permissions(delivery(a).folder_id!).find((p) => p.emailAddress === 'ctl@example.com')!;
    const expires = Date.parse(perm.expirationTime!);
    assert.ok(Math.abs(expires - (Date.now() + 30 * 86400_000)) < 60_000, `expires in 30 days: ${perm.expirationTime}`);
    const libFiles = shop.core.store.library.files(shared.product.id, 1);
    for (const f of libFiles) assert.equal(drive().file(f.drive_file_id!)!.downloadRestrictions?.itemDownloadRestriction?.restrictedForReaders, true);
    const p2 = drive().permissions(delivery(b).folder_id!).find((p) => p.emailAddress === 'ctl2@example.com')!;
    assert.equal(p2.expirationTime, undefined, 'beyond a year: no expirationTime (the access-expiry job revokes)');
  });

  it('a two-code transfer pays both orders; a remainder goes to the unmatched inbox', async () => {
    const { product } = manifestProduct(shop, 'Hai đơn', 1, 8 * KiB);
    const o1 = await shop.core.shop.createOrder({ customerEmail: 'two@example.com', items: [{ productId: product.id }] });
    const o2 = await shop.core.shop.createOrder({ customerEmail: 'two@example.com', items: [{ productId: product.id }, { productId: product.id }] });
    const r = await shop.sender.send(makeTransaction({ accountNumber: ACCOUNT, content: `TT ${o1.code} va ${o2.code}`, transferAmount: o1.amountVnd + o2.amountVnd + 5000, code: null }));
    assert.equal(r.status, 200);
    assert.equal(shop.core.store.orders.get(o1.id)!.paidVnd, o1.amountVnd);
    assert.equal(shop.core.store.orders.get(o2.id)!.paidVnd, o2.amountVnd);
    await shop.until([o1.id, o2.id]);
    const inbox = (await api('GET', '/payments/unmatched')).body.items.filter((p: { content: string }) => p.content.includes(o1.code));
    assert.equal(inbox.length, 1);
    assert.equal(inbox[0].amountVnd, 5000);
    assert.deepEqual(inbox[0].flags, ['split_remainder']);
    const parent = shop.core.store.payments.get(inbox[0].parentId)!;
    assert.equal(parent.match, 'split');
    assert.equal(parent.amountVnd, o1.amountVnd + o2.amountVnd + 5000);
    // The same transfer again (a webhook retry) changes nothing.
    const payments0 = shop.core.store.payments.count();
    await shop.sender.send(makeTransaction({ accountNumber: ACCOUNT, content: `TT ${o1.code} va ${o2.code}`, transferAmount: parent.amountVnd, code: null, referenceCode: parent.referenceCode }));
    assert.equal(shop.core.store.payments.count(), payments0);
  });
});

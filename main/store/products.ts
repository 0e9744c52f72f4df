import type { DeliveryMode, ProductDto, QuotaFallback, SourceConfig, UpdateRule } from '../core/contract';
import { newId } from '../core/ids';
import { prep, type Db } from './db';

interface ProductRow {
  id: string;
  name: string;
  price_vnd: number;
  source: string;
  delivery_mode: DeliveryMode;
  access_days: number | null;
  archived: number;
  updates: UpdateRule;
  update_email: number;
  restrict_downloads: number;
  quota_fallback: QuotaFallback;
  created_at: number;
  updated_at: number;
}

const toDto = (r: ProductRow): ProductDto => ({
  id: r.id,
  name: r.name,
  priceVnd: r.price_vnd,
  source: JSON.parse(r.source) as SourceConfig,
  delivery: r.delivery_mode,
  accessDays: r.access_days,
  archived: r.archived === 1,
  updates: r.updates,
  updateEmail: r.update_email === 1,
  restrictDownloads: r.restrict_downloads === 1,
  quotaFallback: r.quota_fallback,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export interface NewProduct {
  name: string;
  priceVnd: number;
  source: SourceConfig;
  delivery: DeliveryMode;
  accessDays: number | null;
  updates?: UpdateRule;
  updateEmail?: boolean;
  restrictDownloads?: boolean;
  quotaFallback?: QuotaFallback;
}

export class ProductsRepo {
  constructor(private readonly db: Db) {}

  create(p: NewProduct): ProductDto {
    const t = Date.now();
    const id = newId('prd');
    this.db
      .prepare(
        `INSERT INTO products (id, name, price_vnd, source, delivery_mode, access_days, updates, update_email, restrict_downloads, quota_fallback, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(id, p.name, p.priceVnd, JSON.stringify(p.source), p.delivery, p.accessDays, p.updates ?? 'automatic', p.updateEmail ? 1 : 0, p.restrictDownloads ? 1 : 0, p.quotaFallback ?? 'wait', t, t);
    return this.get(id)!;
  }

  update(id: string, patch: Partial<NewProduct> & { archived?: boolean }): ProductDto | undefined {
    const cur = this.get(id);
    if (!cur) return undefined;
    const next = { ...cur, ...patch };
    this.db
      .prepare(
        `UPDATE products SET name = ?, price_vnd = ?, source = ?, delivery_mode = ?, access_days = ?, archived = ?, updates = ?, update_email = ?,
           restrict_downloads = ?, quota_fallback = ?, updated_at = ? WHERE id = ?`,
      )
      .run(
        next.name, next.priceVnd, JSON.stringify(next.source), next.delivery, next.accessDays, next.archived ? 1 : 0, next.updates,
        next.updateEmail ? 1 : 0, next.restrictDownloads ? 1 : 0, next.quotaFallback, Date.now(), id,
      );
    return this.get(id);
  }

  get(id: string): ProductDto | undefined {
    const r = prep<[string], ProductRow>(this.db, 'SELECT * FROM products WHERE id = ?').get(id);
    return r && toDto(r);
  }

  list(includeArchived = false): ProductDto[] {
    return this.db
      .prepare<[], ProductRow>(`SELECT * FROM products ${includeArchived ? '' : 'WHERE archived = 0'} ORDER BY created_at DESC`)
      .all()
      .map(toDto);
  }
}

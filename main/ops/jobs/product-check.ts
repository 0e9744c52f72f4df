// The periodic check for changed products: lists each product's source again, so that a new
// manifest or new files in its folder become a new library version that reaches past buyers by
// the product's rule, without waiting for the next order or the owner's "Prepare now".
import { prepareProduct, type Engine } from '../../engine';
import type { Logger } from '../../platform/log';
import type { Store } from '../../store';

export async function checkProducts(deps: { store: Store; engine: Engine; log: Pick<Logger, 'warn'> }): Promise<{ summary: string; checked: number; failed: number }> {
  const { store, engine, log } = deps;
  let checked = 0;
  let failed = 0;
  for (const p of store.products.list()) {
    // Only products already on Drive: the first upload happens with the first order or "Prepare now".
    const lib = store.library.latestInDrive(p.id);
    if (!lib) continue;
    checked++;
    try {
      await prepareProduct(engine, p.id);
    } catch (err) {
      failed++;
      log.warn({ productId: p.id, err: String((err as Error)?.message ?? err) }, 'checking a product for changes failed');
    }
  }
  const summary = `${checked} product${checked === 1 ? '' : 's'} checked` + (failed ? `, ${failed} could not be read` : '');
  if (failed) throw Object.assign(new Error(summary), { code: 'PRODUCT_CHECK_PARTIAL' });
  return { summary, checked, failed };
}

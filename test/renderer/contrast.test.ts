// Text contrast of the console's colours, computed from styles.css itself (WCAG 2 relative
// luminance): every badge, note, status text and the sidebar reach 4.5:1, the level for small text.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ROOT } from '../helpers/host';

const css = readFileSync(join(ROOT, 'renderer/src/styles.css'), 'utf8');

const vars = new Map<string, string>();
for (const m of css.matchAll(/--([a-z0-9-]+):\s*(#[0-9a-fA-F]{3,6})\s*;/g)) if (!vars.has(m[1]!)) vars.set(m[1]!, m[2]!);

function resolve(v: string): string {
  const m = /var\(--([a-z0-9-]+)\)/.exec(v);
  const out = m ? vars.get(m[1]!) : v.trim();
  assert.ok(out && /^#[0-9a-fA-F]{3,6}$/.test(out), `cannot resolve colour ${v}`);
  return out.length === 4 ? '#' + [...out.slice(1)].map((c) => c + c).join('') : out;
}

/** The last declaration of `prop` in the rule for exactly `selector`. */
function decl(selector: string, prop: string): string {
  const esc = selector.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const rules = [...css.matchAll(new RegExp(`(?:^|\\n|,)\\s*${esc}\\s*(?:,[^{]*)?\\{([^}]*)\\}`, 'g'))];
  let value: string | undefined;
  for (const r of rules) {
    const d = new RegExp(`(?:^|;|\\n)\\s*${prop}:\\s*([^;]+);`).exec(r[1]!);
    if (d) value = d[1]!;
  }
  assert.ok(value, `${selector} has no ${prop}`);
  return resolve(value);
}

function luminance(hex: string): number {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255).map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
  return 0.2126 * r! + 0.7152 * g! + 0.0722 * b!;
}

export function contrast(a: string, b: string): number {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi! + 0.05) / (lo! + 0.05);
}

describe('colour contrast (styles.css)', () => {
  it('computes WCAG contrast correctly', () => {
    assert.equal(Math.round(contrast('#000000', '#ffffff') * 10) / 10, 21);
    assert.equal(Math.round(contrast('#777777', '#ffffff') * 100) / 100, 4.48);
  });

  for (const tone of ['', '-success', '-warning', '-danger', '-info', '-accent']) {
    it(`badge${tone} text is at least 4.5:1 on its background`, () => {
      const sel = `.badge${tone}`;
      const c = contrast(decl(sel, 'color'), decl(sel, 'background'));
      assert.ok(c >= 4.5, `${sel}: ${c.toFixed(2)}:1`);
    });
  }

  const pairs: [string, string, string][] = [
    ['muted text on the page', 'var(--muted)', 'var(--bg)'],
    ['muted text on a card', 'var(--muted)', 'var(--panel)'],
    ['ink on the page', 'var(--ink)', 'var(--bg)'],
    ['error text on a card', '.error-text', 'var(--panel)'],
    ['warning text on a card', '.warn-text', 'var(--panel)'],
    ['success text on a card', '.ok-text', 'var(--panel)'],
    ['warning todo on a card', '.todo-warn', 'var(--panel)'],
    ['danger todo on a card', '.todo-danger', 'var(--panel)'],
    ['sidebar links', '.sidebar li a', '.sidebar'],
    ['unmatched count in the sidebar', '.nav-count', '.nav-count:bg'],
    ['link colour on a card', 'a', 'var(--panel)'],
  ];
  for (const [what, fg, bg] of pairs) {
    it(`${what} is at least 4.5:1`, () => {
      const colour = (s: string, prop: 'color' | 'background') => (s.startsWith('var(') ? resolve(s) : decl(s.replace(/:bg$/, ''), s.endsWith(':bg') ? 'background' : prop));
      const c = contrast(colour(fg, 'color'), colour(bg, 'background'));
      assert.ok(c >= 4.5, `${what}: ${c.toFixed(2)}:1`);
    });
  }
});

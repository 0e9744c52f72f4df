// Writes the settings table into README.md from the registry (main/core/settings.ts), between
// the settings:begin and settings:end markers. Run after `npm run build`; a test fails when the
// README's table is not what this would write.
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';

const root = resolve(dirname(new URL(import.meta.url).pathname), '..');
const { settingsMarkdownTable } = createRequire(import.meta.url)(join(root, 'dist/main/core/settings.js'));
const path = join(root, 'README.md');
const text = readFileSync(path, 'utf8');
const begin = '<!-- settings:begin -->';
const end = '<!-- settings:end -->';
const a = text.indexOf(begin);
const b = text.indexOf(end);
if (a < 0 || b < a) throw new Error(`README.md has no ${begin} … ${end} markers`);
writeFileSync(path, `${text.slice(0, a + begin.length)}\n${settingsMarkdownTable()}\n${text.slice(b)}`);
console.log('README.md: settings table written');

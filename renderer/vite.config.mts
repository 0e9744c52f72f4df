// Builds the renderer into dist/renderer, which the admin listener serves and the Electron window
// loads. Run from the repo root: `npx vite build --config renderer/vite.config.mts`.
import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

const here = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root: here,
  // Relative asset URLs: the same build works under http://127.0.0.1:PORT/ and a custom app protocol.
  base: './',
  plugins: [react()],
  build: {
    outDir: fileURLToPath(new URL('../dist/renderer', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    // The CSP allows only 'self' scripts: no inline module-preload polyfill.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 800,
  },
  server: {
    host: '127.0.0.1',
    // `npx vite --config renderer/vite.config.mts` against a running `driveship serve` on 4710.
    proxy: {
      '/api': { target: 'http://127.0.0.1:4710', changeOrigin: true },
      '/auth': { target: 'http://127.0.0.1:4710', changeOrigin: true },
    },
  },
});

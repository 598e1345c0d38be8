/**
 * The dashboard's page, built into `dashboard/dist/web`, which the dashboard server serves at `/`
 * (`npm run build` runs this build when the page's sources changed; see scripts/build.mjs).
 * `npm run dev -w dashboard-web` serves it with hot reload on :5173 and sends `/admin` to the
 * dashboard on :3000.
 */
import preact from '@preact/preset-vite';
import { defineConfig } from 'vite';

export default defineConfig({
  // Relative paths (root, outDir) resolve against the folder of this file when built from elsewhere.
  root: import.meta.dirname,
  base: '/',
  plugins: [preact()],
  build: {
    outDir: '../dist/web',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
  },
  server: {
    port: 5173,
    proxy: { '/admin': 'http://127.0.0.1:3000' },
  },
});

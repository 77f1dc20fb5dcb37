// Bundles the console's page (ui/) into dist/ui with esbuild: app.js (Preact, the yaml library and
// the pages, minified), app.css and index.html. Run by `npm run build` and by the bootstrap, so
// `kubectl netwarden ui` serves it from the package, with nothing fetched at run time.
import { copyFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.resolve(process.argv[2] ?? path.join(repo, 'dist', 'ui'));
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [path.join(repo, 'ui/src/main.tsx')],
  bundle: true,
  minify: true,
  format: 'esm',
  target: 'es2022',
  jsx: 'automatic',
  jsxImportSource: 'preact',
  outfile: path.join(out, 'app.js'),
  legalComments: 'eof',
  logLevel: 'warning',
});
for (const f of ['index.html', 'app.css']) copyFileSync(path.join(repo, 'ui', f), path.join(out, f));

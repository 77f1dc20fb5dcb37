// Bundles the console's page (ui/) with esbuild: app.js (Preact, the yaml library and the pages,
// minified), app.css and index.html, into dist/ui or the directory given. Run by `npm run build`,
// by the bootstrap (so the plugin run from the sources serves this checkout's page) and by the
// krew packaging; `kubectl netwarden ui` serves these files and fetches nothing at run time.
//   node --import tsx hack/build-ui.ts [OUT_DIR]
import { copyFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const UI_FILES = ['app.css', 'app.js', 'index.html'] as const;

/** Builds the page into out; resolves with the bundle's inputs (for the third-party licenses). */
export async function buildUi(out: string): Promise<string[]> {
  mkdirSync(out, { recursive: true });
  const result = await build({
    absWorkingDir: repo,
    entryPoints: ['ui/src/main.tsx'],
    bundle: true,
    minify: true,
    format: 'esm',
    target: 'es2022',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    outfile: path.join(out, 'app.js'),
    legalComments: 'none',
    metafile: true,
    logLevel: 'warning',
  });
  for (const f of ['index.html', 'app.css']) copyFileSync(path.join(repo, 'ui', f), path.join(out, f));
  return Object.keys(result.metafile.inputs);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await buildUi(path.resolve(process.argv[2] ?? path.join(repo, 'dist', 'ui')));
}

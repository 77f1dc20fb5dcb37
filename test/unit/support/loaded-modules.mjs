// Preloaded with --import by cli-lazy-load.test.ts: when the process exits, however it exits,
// writes the modules it loaded, one per line, to the file NETWARDEN_LOADED_MODULES names: every
// URL Node's module hooks saw load, and every CommonJS file in require's cache (a require() from
// a module that tsx compiled does not always pass the hooks).
import { writeFileSync } from 'node:fs';
import { createRequire, registerHooks } from 'node:module';

const out = process.env.NETWARDEN_LOADED_MODULES;
const loaded = [];
registerHooks({
  load(url, context, nextLoad) {
    loaded.push(url);
    return nextLoad(url, context);
  },
});
process.on('exit', () => {
  if (!out) return;
  const required = Object.keys(createRequire(import.meta.url).cache);
  writeFileSync(out, [...loaded, ...required].join('\n') + '\n');
});

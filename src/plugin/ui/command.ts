// `kubectl netwarden ui [--port N] [--open]`: starts the console and prints its URL with the token.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, DEFAULT_CONTROLLER_URL, loadConfig, PluginError, type ConnectionFlags } from '../client.js';
import { ConsoleApi } from './api.js';
import { startConsoleServer, type ConsoleServer } from './server.js';

/**
 * The built front end: ui/ beside a bundled plugin (the krew archive), dist/ui beside the compiled
 * plugin (dist/src/plugin/ui -> dist/ui), or the repository's dist/ui when run from the TypeScript
 * sources. NETWARDEN_UI_DIR overrides them.
 */
export function findStaticDir(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const up = path.resolve(here, '../../..');
  const candidates = [process.env.NETWARDEN_UI_DIR, path.join(here, 'ui'), path.join(up, 'ui'), path.join(up, 'dist', 'ui')].filter((d): d is string => !!d);
  const found = candidates.find((d) => existsSync(path.join(d, 'app.js')) && existsSync(path.join(d, 'index.html')));
  if (!found) throw new PluginError(`the console's front end is not built (looked in ${candidates.join(', ')}): run npm run build`);
  return found;
}

export interface UiFlags extends ConnectionFlags {
  port?: string;
  open?: boolean;
}

export async function startUi(flags: UiFlags): Promise<ConsoleServer> {
  const port = flags.port === undefined ? 0 : Number(flags.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new PluginError(`--port must be 0..65535, got ${flags.port}`);
  const staticDir = findStaticDir();
  const kc = loadConfig(flags);
  const namespace = flags.namespace ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';
  const controllerUrl = flags.controllerUrl ?? process.env.NETWARDEN_CONTROLLER_URL ?? DEFAULT_CONTROLLER_URL;
  // Without a controller connection the pages still list and create; downloads say why they cannot.
  const controller = await connect(flags).catch((err: unknown) => ({ error: err instanceof Error ? err.message : String(err) }));
  const api = new ConsoleApi({ kc, namespace, controller, controllerUrl });
  const token = randomBytes(24).toString('base64url');
  return startConsoleServer({ token, port, staticDir, api: api.handle });
}

/** Opens the URL in the desktop's browser; a failure only means the user opens it by hand. */
export function openBrowser(url: string): void {
  const cmd = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'explorer' : 'xdg-open';
  const child = spawn(cmd, [url], { stdio: 'ignore', detached: true });
  child.once('error', (err) => process.stderr.write(`could not open a browser (${err.message}): open the URL above yourself\n`));
  child.unref();
}

// Argo CD health checks of the three kinds (config/argocd/), run the way Argo CD runs them: the
// object as the Lua global `obj` in a sandbox with Argo CD's libraries (hack/argocd-health.lua),
// by a real Lua interpreter from Debian. Lua 5.1 is the dialect of gopher-lua, Argo CD's
// interpreter, so a script that uses anything newer fails here as it would there.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const ARGOCD_KINDS = ['DropTail', 'PacketCapture', 'AuditForwarder'] as const;
export type ArgoKind = (typeof ARGOCD_KINDS)[number];
export const LUA_VERSIONS = ['lua5.1', 'lua5.4'] as const;

export interface ArgoHealth {
  status: string;
  message?: string;
}

export function healthScript(kind: ArgoKind): string {
  return path.join(REPO, 'config/argocd/resource_customizations/netwarden.io', kind, 'health.lua');
}

/** The health Argo CD would show for this object. */
export function argoHealth(kind: ArgoKind, obj: unknown, lua: (typeof LUA_VERSIONS)[number] = 'lua5.1'): ArgoHealth {
  const r = spawnSync(lua, [path.join(REPO, 'hack/argocd-health.lua'), healthScript(kind)], { input: JSON.stringify(obj), encoding: 'utf8', timeout: 10_000 });
  if (r.error) throw new Error(`${lua}: ${r.error.message} (hack/bootstrap.sh installs lua5.1, lua5.4 and lua-dkjson)`);
  if (r.status !== 0) throw new Error(`${lua} ${kind}/health.lua exited ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout) as ArgoHealth;
}

/**
 * With NETWARDEN_ARGOCD_TESTDATA=<dir>, the e2e test writes each real object it judged there
 * (<dir>/<Kind>/<name>.yaml, without the server's bookkeeping), for Argo CD's testdata layout.
 */
export function keepTestdata(kind: ArgoKind, name: string, obj: { metadata?: Record<string, unknown> }): void {
  const dir = process.env.NETWARDEN_ARGOCD_TESTDATA;
  if (!dir) return;
  const { managedFields: _m, uid: _u, resourceVersion: _r, annotations: _a, ...metadata } = obj.metadata ?? {};
  mkdirSync(path.join(dir, kind), { recursive: true });
  writeFileSync(path.join(dir, kind, `${name}.yaml`), stringify({ ...obj, metadata }, { lineWidth: 0 }));
}

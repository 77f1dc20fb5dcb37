// The Netwarden console's page: hash routes #/drops, #/captures/<ns>, #/audit, #/events/<ns>/<pod>.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { ContextInfo } from '../../src/plugin/ui/types.js';
import { getJson } from './api.js';
import { AuditPage } from './audit.js';
import { CapturesPage } from './captures.js';
import { ErrorBox } from './common.js';
import { DropsPage } from './drops.js';
import { EventsPage } from './events.js';

function useHash(): string {
  const [hash, setHash] = useState(location.hash || '#/drops');
  useEffect(() => {
    const on = (): void => setHash(location.hash || '#/drops');
    addEventListener('hashchange', on);
    on(); // the hash may have changed before this effect ran
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash;
}

function App() {
  const hash = useHash();
  const [ctx, setCtx] = useState<ContextInfo | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  useEffect(() => {
    getJson<ContextInfo>('/api/context').then(setCtx, (e: unknown) => setError(e instanceof Error ? e.message : String(e)));
  }, []);
  const parts = hash.slice(2).split('/').map((p) => decodeURIComponent(p));
  const page = parts[0] ?? 'drops';
  const namespace = (page === 'captures' && parts[1]) || ctx?.namespace || 'default';
  const tab = (id: string, label: string, href: string) => (
    <a href={href} class={page === id ? 'active' : ''} data-testid={`nav-${id}`}>{label}</a>
  );
  return (
    <div class="app">
      <header>
        <div class="brand">Netwarden</div>
        <nav>
          {tab('drops', 'Drops', '#/drops')}
          {tab('captures', 'Captures', `#/captures/${encodeURIComponent(namespace)}`)}
          {tab('audit', 'Audit forwarders', '#/audit')}
        </nav>
        <div class="who" data-testid="who">
          {ctx ? <span>{ctx.user} <span class="muted">@ {ctx.context}</span></span> : null}
        </div>
      </header>
      <main>
        <ErrorBox error={error} />
        {ctx?.controllerError ? <div class="error">Controller {ctx.controllerUrl} not usable: {ctx.controllerError}</div> : null}
        {page === 'drops' ? <DropsPage access={ctx?.access.listDropTails} /> : null}
        {page === 'captures' && ctx ? (
          <CapturesPage namespace={namespace} namespaces={ctx.namespaces.includes(namespace) ? ctx.namespaces : [namespace, ...ctx.namespaces]} setNamespace={(ns) => (location.hash = `#/captures/${encodeURIComponent(ns)}`)} />
        ) : null}
        {page === 'audit' ? <AuditPage access={ctx?.access.listAuditForwarders} nodesAccess={ctx?.access.auditNodes} /> : null}
        {page === 'events' && parts[1] && parts[2] ? <EventsPage namespace={parts[1]} pod={parts[2]} /> : null}
      </main>
    </div>
  );
}

render(<App />, document.getElementById('app')!);

import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { AccessDecision } from '../../src/plugin/ui/types.js';
import { getJson } from './api.js';

/** Loads path now and every intervalMs; keeps the last good answer while a refresh fails. */
export function usePoll<T>(path: string | undefined, intervalMs: number): { data: T | undefined; error: string | undefined; reload: () => void } {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    if (!path) return undefined;
    let live = true;
    const load = (): void => {
      getJson<T>(path)
        .then((d) => {
          if (live) {
            setData(d);
            setError(undefined);
          }
        })
        .catch((e: unknown) => live && setError(e instanceof Error ? e.message : String(e)));
    };
    load();
    const timer = setInterval(load, intervalMs);
    return () => {
      live = false;
      clearInterval(timer);
    };
  }, [path, intervalMs, tick]);
  return { data, error, reload: () => setTick((t) => t + 1) };
}

/** A button for an action RBAC decides: disabled, marked forbidden and saying why when it is not allowed. */
export function ActionButton(props: { access: AccessDecision | undefined; onClick: () => void; label: string; busy?: boolean; danger?: boolean; testId: string; disabledWhy?: string }) {
  const forbidden = props.access !== undefined && !props.access.allowed;
  const title = forbidden ? props.access!.reason : props.disabledWhy ?? props.access?.action ?? '';
  return (
    <button
      type="button"
      class={`${props.danger ? 'danger' : ''} ${forbidden ? 'forbidden' : ''}`}
      data-testid={props.testId}
      data-forbidden={forbidden ? 'true' : 'false'}
      disabled={forbidden || props.busy || props.disabledWhy !== undefined}
      title={title}
      onClick={props.onClick}
    >
      {forbidden ? <Lock /> : null}
      {props.label}
    </button>
  );
}

/** A padlock drawn inline: the machine's fonts may have no emoji. */
function Lock() {
  return (
    <svg class="lock" width="10" height="12" viewBox="0 0 10 12" aria-label="forbidden">
      <path d="M2.5 5V3.5a2.5 2.5 0 0 1 5 0V5" fill="none" stroke="currentColor" stroke-width="1.4" />
      <rect x="1" y="5" width="8" height="6.5" rx="1.2" fill="currentColor" />
    </svg>
  );
}

/** The actions this user may not do, each with the SelfSubjectAccessReview's reason. */
export function ForbiddenList(props: { decisions: Array<[string, AccessDecision]> }) {
  const denied = props.decisions.filter(([, d]) => !d.allowed);
  if (!denied.length) return null;
  return (
    <ul class="forbidden-list" data-testid="forbidden-list">
      {denied.map(([label, d]) => (
        <li key={label} data-action={label}>
          <strong>{label}</strong> is disabled: {d.reason}
        </li>
      ))}
    </ul>
  );
}

export function ErrorBox(props: { error: string | undefined }) {
  return props.error ? <div class="error" role="alert">{props.error}</div> : null;
}

export function Card(props: { title: ComponentChildren; children: ComponentChildren; testId?: string }) {
  return (
    <section class="card" data-testid={props.testId}>
      <h2>{props.title}</h2>
      {props.children}
    </section>
  );
}

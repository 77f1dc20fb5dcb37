// The controller's CA as it is kept in its Secret, and the one rule of its life, without I/O.
//
// The Secret holds the signing CA (ca.crt, ca.key), during a rotation the next one (next.crt,
// next.key), and the certificates of retired CAs that may still have signed a certificate in use
// (retired.crt). Clients trust all of them: the ConfigMap netwarden-ca carries that bundle.
//
// Rotation without a failed handshake: at 60 % of the signing CA's life the next CA is made and
// published (trusted, not yet signing); at 80 %, and once the next CA has been published for a
// while (a tenth of its life, at most an hour: every client watches the bundle and has it by
// then), it becomes the signing CA and the old one is retired. No certificate outlives the CA that
// signed it (leafValidity caps it), every certificate is renewed by 90 % of its life, and a
// retired CA stays trusted until it expires: so whatever a client is shown has been trusted since
// before it was issued.
import type { CertificateAuthority } from '../../util/x509.js';
import { certificateValidity, splitPemCertificates, type Validity } from '../../util/certinfo.js';

export interface CaState {
  current: CertificateAuthority;
  next?: CertificateAuthority | undefined;
  /** PEM certificates of earlier signing CAs, kept until they expire. */
  retired: string[];
}

export type CaStep = 'create' | 'stage' | 'promote' | 'prune';

const STAGE_AT = 0.6;
const PROMOTE_AT = 0.8;
const MAX_PUBLISH_MS = 3_600_000;

const KEYS = { cert: 'ca.crt', key: 'ca.key', nextCert: 'next.crt', nextKey: 'next.key', retired: 'retired.crt' } as const;

/** The state in a Secret's data (base64 values), or why it is unusable. */
export function stateFromSecretData(data: Record<string, string> | undefined): CaState | { invalid: string } {
  const text = (key: string): string | undefined => (data?.[key] ? Buffer.from(data[key], 'base64').toString('utf8') : undefined);
  const cert = text(KEYS.cert);
  const key = text(KEYS.key);
  if (!cert || !key) return { invalid: `the Secret has no ${KEYS.cert} and ${KEYS.key}` };
  try {
    certificateValidity(cert);
  } catch (err) {
    return { invalid: `${KEYS.cert} is not a certificate: ${(err as Error).message}` };
  }
  const nextCert = text(KEYS.nextCert);
  const nextKey = text(KEYS.nextKey);
  return { current: { certPem: cert, keyPem: key }, next: nextCert && nextKey ? { certPem: nextCert, keyPem: nextKey } : undefined, retired: splitPemCertificates(text(KEYS.retired) ?? '') };
}

export function secretData(state: CaState): Record<string, string> {
  const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
  const data: Record<string, string> = { [KEYS.cert]: b64(state.current.certPem), [KEYS.key]: b64(state.current.keyPem) };
  if (state.next) Object.assign(data, { [KEYS.nextCert]: b64(state.next.certPem), [KEYS.nextKey]: b64(state.next.keyPem) });
  if (state.retired.length > 0) data[KEYS.retired] = b64(state.retired.join(''));
  return data;
}

/** Every CA certificate a client must trust now: signing, next, and retired ones not yet expired. */
export function trustBundle(state: CaState, now: Date): string {
  const all = [state.current.certPem, ...(state.next ? [state.next.certPem] : []), ...state.retired.filter((pem) => certificateValidity(pem).notAfter > now)];
  return [...new Set(all.map((pem) => pem.trim()))].map((pem) => `${pem}\n`).join('');
}

/** Clock skew allowance: certificates start a little in the past (Kubernetes' signers: 5 min). */
export function backdateMs(lifetimeMs: number): number {
  return Math.min(300_000, lifetimeMs / 20);
}

/** A certificate's validity: from a little before now for `lifetimeMs`, never past the CA's expiry. */
export function leafValidity(ca: CertificateAuthority, now: Date, lifetimeMs: number): Validity {
  const caEnd = certificateValidity(ca.certPem).notAfter.getTime();
  return { notBefore: new Date(now.getTime() - backdateMs(lifetimeMs)), notAfter: new Date(Math.min(now.getTime() + lifetimeMs, caEnd)) };
}

/** The validity of a new CA. */
export function caValidity(now: Date, lifetimeMs: number): Validity {
  return { notBefore: new Date(now.getTime() - backdateMs(lifetimeMs)), notAfter: new Date(now.getTime() + lifetimeMs) };
}

/** What to do to the state now, and when to look again if nothing changes it. */
export function caStep(state: CaState | undefined, now: Date): { step?: CaStep; nextCheck: Date } {
  if (!state) return { step: 'create', nextCheck: now };
  const t = now.getTime();
  const current = certificateValidity(state.current.certPem);
  const start = current.notBefore.getTime();
  const end = current.notAfter.getTime();
  const life = end - start;
  const retiredEnd = Math.min(...state.retired.map((pem) => certificateValidity(pem).notAfter.getTime()), Infinity);
  if (retiredEnd <= t) return { step: 'prune', nextCheck: now };
  if (!state.next) {
    if (t >= end) return { step: 'create', nextCheck: now }; // expired with no successor: start over
    const stageAt = start + life * STAGE_AT;
    return t >= stageAt ? { step: 'stage', nextCheck: now } : { nextCheck: new Date(Math.min(stageAt, retiredEnd)) };
  }
  const next = certificateValidity(state.next.certPem);
  const nextLife = next.notAfter.getTime() - next.notBefore.getTime();
  const published = next.notBefore.getTime() + backdateMs(nextLife) + Math.min(nextLife / 10, MAX_PUBLISH_MS);
  const promoteAt = Math.max(start + life * PROMOTE_AT, published);
  // Past its expiry the current CA signs nothing valid: promote at once, whatever the clients know.
  if (t >= promoteAt || t >= end) return { step: 'promote', nextCheck: now };
  return { nextCheck: new Date(Math.min(promoteAt, retiredEnd)) };
}

/** The state after a step; `newCa` makes a CA (the only thing here that is not pure). */
export async function applyStep(state: CaState | undefined, step: CaStep, now: Date, newCa: () => Promise<CertificateAuthority>): Promise<CaState> {
  switch (step) {
    case 'create':
      // An expired CA is not kept: nothing it signed is valid any more.
      return { current: await newCa(), retired: [] };
    case 'stage':
      return { ...state!, next: await newCa() };
    case 'promote':
      return { current: state!.next!, retired: [...state!.retired, state!.current.certPem].filter((pem) => certificateValidity(pem).notAfter > now) };
    case 'prune':
      return { ...state!, retired: state!.retired.filter((pem) => certificateValidity(pem).notAfter > now) };
  }
}

// Where serving certificates and CA bundles come from, and how they change without a restart.
//
// A CertificateRotator gets a certificate from an issuer (the controller's own CA, or the CSR API
// for an agent) and gets the next one at a random point between 70 % and 90 % of the current one's
// life, as the kubelet does, so that nodes started together do not renew together; a failed renewal
// is retried with backoff while the current certificate is still good. File sources (certificates
// a user brings, e.g. from cert-manager through a Secret volume) are read again when the files
// change. Each new certificate goes to HttpsApiServer.setCertificate, which swaps the running
// server's secure context: no restart, no failed request.
import { readFileSync, statSync, unwatchFile, watchFile } from 'node:fs';
import tls from 'node:tls';
import type { KubeConfig, V1ConfigMap } from '@kubernetes/client-node';
import { Backoff } from '../util/backoff.js';
import { errorMessage, loggerFor, type Logger } from '../util/log.js';
import { sleep, sleepUntil } from '../util/sleep.js';
import { certificateValidity, type Validity } from '../util/certinfo.js';
import type { HttpsApiServer, ServingCredentials } from './https.js';
import { coreInformer, type Informer } from './informer.js';

/** Something that hands out serving certificates, the first one and every renewal. */
export interface CertificateSource {
  start(onCertificate: (credentials: ServingCredentials) => void): void;
  stop(): Promise<void>;
}

/** CA certificates (PEM) to verify a peer with; undefined: the system's. */
export interface TrustBundle {
  current(): string | undefined;
}

/** Where in a certificate's life the next one is fetched: 70-90 % of it, at random (the kubelet's rule). */
export function renewalTime(validity: Validity, random: () => number = Math.random): Date {
  const start = validity.notBefore.getTime();
  const life = validity.notAfter.getTime() - start;
  return new Date(start + life * (0.7 + 0.2 * random()));
}

export interface RotatorOptions {
  /** For logs, e.g. "controller serving certificate". */
  name: string;
  /** Makes a new key and gets a certificate for it; may take long (a CSR waits for its signer). */
  issue(signal: AbortSignal): Promise<ServingCredentials>;
  /** Retry after a failed issue. Default 1 s .. 60 s. */
  backoff?: Backoff;
}

export class CertificateRotator implements CertificateSource {
  private readonly log: Logger;
  private readonly backoff: Backoff;
  private abort = new AbortController();
  private wake: AbortController | undefined;
  private loop: Promise<void> | undefined;
  private validity: Validity | undefined;

  constructor(private readonly opts: RotatorOptions) {
    this.log = loggerFor('certificates', opts.name);
    this.backoff = opts.backoff ?? new Backoff({ initialMs: 1000, maxMs: 60_000 });
  }

  start(onCertificate: (credentials: ServingCredentials) => void): void {
    this.loop ??= this.run(onCertificate);
  }

  /** Renews now instead of at the planned time (e.g. the node's addresses changed). */
  renewNow(reason: string): void {
    this.log.info('renewing early', { reason });
    this.wake?.abort();
  }

  /** When the certificate in use expires; undefined before the first one. */
  expiry(): Date | undefined {
    return this.validity?.notAfter;
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
  }

  private async run(onCertificate: (credentials: ServingCredentials) => void): Promise<void> {
    const signal = this.abort.signal;
    while (!signal.aborted) {
      let credentials: ServingCredentials;
      try {
        credentials = await this.opts.issue(signal);
      } catch (err) {
        if (signal.aborted) return;
        const delay = this.retryDelay();
        this.log.error('could not get a serving certificate', { error: errorMessage(err), retryInMs: delay, currentExpires: this.validity?.notAfter.toISOString() });
        await sleep(delay, signal);
        continue;
      }
      this.backoff.reset();
      this.validity = certificateValidity(credentials.cert.toString());
      onCertificate(credentials);
      const renewAt = renewalTime(this.validity);
      this.log.info('serving certificate in use', { notBefore: this.validity.notBefore.toISOString(), notAfter: this.validity.notAfter.toISOString(), renewAt: renewAt.toISOString() });
      this.wake = new AbortController();
      await sleepUntil(renewAt, AbortSignal.any([signal, this.wake.signal]));
    }
  }

  /** Backoff, but never past the current certificate's expiry: one last try before it runs out. */
  private retryDelay(): number {
    const delay = this.backoff.next();
    const left = this.validity ? this.validity.notAfter.getTime() - Date.now() : Infinity;
    return left > 2000 ? Math.min(delay, left / 2) : delay;
  }
}

/**
 * A certificate and key a user brings (--tls-cert-file/--tls-key-file), read again whenever either
 * file changes (a Secret volume is updated in place), and swapped in once both match again.
 */
export class FileCertificateSource implements CertificateSource {
  private readonly log: Logger;
  private onCertificate: ((credentials: ServingCredentials) => void) | undefined;
  private readonly reload = (): void => this.load();

  constructor(
    private readonly certFile: string,
    private readonly keyFile: string,
    private readonly pollMs = 10_000,
  ) {
    this.log = loggerFor('certificates', certFile);
  }

  /** The files as they are now; throws when they cannot be read or do not match. */
  read(): ServingCredentials {
    const credentials = { cert: readFileSync(this.certFile), key: readFileSync(this.keyFile) };
    tls.createSecureContext(credentials); // a certificate with another key's file throws here
    return credentials;
  }

  start(onCertificate: (credentials: ServingCredentials) => void): void {
    this.onCertificate = onCertificate;
    onCertificate(this.read()); // unreadable at start is fatal, as before: the flags are wrong
    watchFile(this.certFile, { interval: this.pollMs }, this.reload);
    watchFile(this.keyFile, { interval: this.pollMs }, this.reload);
  }

  async stop(): Promise<void> {
    unwatchFile(this.certFile, this.reload);
    unwatchFile(this.keyFile, this.reload);
  }

  private load(): void {
    try {
      const credentials = this.read();
      this.onCertificate?.(credentials);
      this.log.info('serving certificate reloaded', { notAfter: certificateValidity(credentials.cert.toString()).notAfter.toISOString() });
    } catch (err) {
      // Mid-update (the certificate written, the key not yet): the next change brings the pair.
      this.log.warn('serving certificate files unusable, keeping the current one', { error: errorMessage(err) });
    }
  }
}

/** A CA bundle file (--ca-file), read again when it changes (looked at no more than once a second). */
export class FileTrustBundle implements TrustBundle {
  private text: string | undefined;
  private mtimeMs = -1;
  private checkedAt = 0;

  constructor(private readonly file: string) {}

  current(): string | undefined {
    const now = Date.now();
    if (now - this.checkedAt < 1000 && this.text !== undefined) return this.text;
    this.checkedAt = now;
    try {
      const mtimeMs = statSync(this.file).mtimeMs;
      if (mtimeMs !== this.mtimeMs || this.text === undefined) {
        this.text = readFileSync(this.file, 'utf8');
        this.mtimeMs = mtimeMs;
      }
    } catch (err) {
      if (this.text === undefined) throw new Error(`cannot read the CA file ${this.file}: ${errorMessage(err)}`);
    }
    return this.text;
  }
}

/**
 * Serves `api` with the source's certificates: starts it with the first, swaps in every later one.
 * `alsoServe` gets each too (the metrics port serves the same certificate).
 */
export function serveWithCertificates(api: HttpsApiServer | undefined, source: CertificateSource, onStartFailure: (err: unknown) => void, alsoServe?: (credentials: ServingCredentials) => void): void {
  let starting = false;
  source.start((credentials) => {
    alsoServe?.(credentials);
    if (!api) return;
    api.setCertificate(credentials);
    if (starting || api.listening()) return;
    starting = true;
    api.start().catch(onStartFailure);
  });
}

/**
 * A CA bundle published in a ConfigMap key (the controller's netwarden-ca), kept current by a
 * one-object informer: a rotation's next CA is trusted seconds after it is published. Register
 * the informer with the process's manager, which starts it.
 */
export function configMapTrustBundle(kc: KubeConfig, namespace: string, name: string, key: string): { informer: Informer<V1ConfigMap>; bundle: TrustBundle } {
  const informer = coreInformer(kc, 'configmaps', { namespace, fieldSelector: `metadata.name=${name}` });
  const bundle: TrustBundle = {
    current() {
      const text = informer.get(name, namespace)?.data?.[key];
      if (!text) throw new Error(`the ConfigMap ${namespace}/${name} has no ${key} yet (the controller publishes it)`);
      return text;
    },
  };
  return { informer, bundle };
}

// The controller's CA, kept in a Secret every replica reads and any replica may advance (create,
// stage the next CA, promote it, prune retired ones: authority.ts). Writes carry the
// resourceVersion they were computed from, so of two replicas racing only one wins; the other
// gets a conflict, reads what won, and goes on from there. Every replica also publishes the trust
// bundle to the ConfigMap netwarden-ca, where agents and the plugin read it.
//
// Not leader-gated: a standby needs the CA too, for its own serving certificate.
import { EventEmitter } from 'node:events';
import { CoreV1Api, type KubeConfig, type V1Secret } from '@kubernetes/client-node';
import { CA_BUNDLE_KEY } from '../../apis/certificates.js';
import { coreInformer, type Informer } from '../../runtime/informer.js';
import { Backoff } from '../../util/backoff.js';
import { apiErrorCode } from '../../util/kube.js';
import { errorMessage, loggerFor } from '../../util/log.js';
import { sleep } from '../../util/sleep.js';
import type { SubjectAltNames } from '../../util/certinfo.js';
import { createCertificateAuthority, issueServingCertificate, signServingCertificate, type CertificateAuthority, type IssuedCertificate, type ParsedCertificateRequest } from '../../util/x509.js';
import { applyStep, caStep, caValidity, leafValidity, secretData, stateFromSecretData, trustBundle, type CaState } from './authority.js';

export interface CaStoreOptions {
  secretNamespace: string;
  secretName: string;
  /** Where the bundle is published (Netwarden's namespace). */
  configMapNamespace: string;
  configMapName: string;
  /** Lifetime of each CA. */
  caValidityMs: number;
}

/** Safety net: look at the CA this often even when nothing says so. */
const RECHECK_MS = 10 * 60_000;
const MANAGED_BY = { 'app.kubernetes.io/managed-by': 'netwarden-controller', 'app.kubernetes.io/part-of': 'netwarden' };

export class CaStore extends EventEmitter<{ change: [] }> {
  private readonly core: CoreV1Api;
  private readonly secrets: Informer<V1Secret>;
  private readonly log;
  private state: CaState | undefined;
  private bundle: string | undefined;
  private published: string | undefined;
  private syncing: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private readonly stopped = new AbortController();

  constructor(
    kc: KubeConfig,
    private readonly opts: CaStoreOptions,
  ) {
    super();
    this.core = kc.makeApiClient(CoreV1Api);
    this.log = loggerFor('certificates/ca', `${opts.secretNamespace}/${opts.secretName}`);
    this.secrets = coreInformer(kc, 'secrets', { namespace: opts.secretNamespace, fieldSelector: `metadata.name=${opts.secretName}` });
    const onSecret = (): void => this.requestSync();
    this.secrets.on('add', onSecret);
    this.secrets.on('update', onSecret);
    this.secrets.on('delete', onSecret);
  }

  /** Resolves once there is a CA to sign with (retrying while the API server refuses or is away). */
  async start(): Promise<void> {
    await this.secrets.start();
    const backoff = new Backoff({ initialMs: 500, maxMs: 30_000 });
    while (!this.state && !this.stopped.signal.aborted) {
      this.requestSync();
      await this.syncing;
      if (!this.state) await sleep(backoff.next(), this.stopped.signal);
    }
  }

  async stop(): Promise<void> {
    this.stopped.abort();
    if (this.timer) clearTimeout(this.timer);
    await this.secrets.stop();
    await this.syncing;
  }

  /** The CA certificates to trust (PEM); undefined before start() resolved. */
  trustBundle(): string | undefined {
    return this.bundle;
  }

  /** The controller's own serving certificate: a new key, signed by the current CA. */
  async issue(commonName: string, sans: SubjectAltNames, lifetimeMs: number): Promise<IssuedCertificate> {
    const ca = this.signingCa();
    return issueServingCertificate(ca, { commonName, sans, ...leafValidity(ca, new Date(), lifetimeMs) });
  }

  /** Signs a reviewed request for exactly these names. */
  async sign(request: ParsedCertificateRequest, commonName: string, sans: SubjectAltNames, lifetimeMs: number): Promise<string> {
    const ca = this.signingCa();
    return signServingCertificate(ca, { commonName, publicKey: request.publicKey, sans, ...leafValidity(ca, new Date(), lifetimeMs) });
  }

  private signingCa(): CertificateAuthority {
    if (!this.state) throw new Error('the CA is not loaded yet');
    return this.state.current;
  }

  private requestSync(): void {
    if (this.stopped.signal.aborted) return;
    this.syncing = this.syncing.then(() => this.sync());
  }

  /** One pass: read the Secret, advance the CA if its time has come, publish the bundle, plan the next pass. */
  private async sync(): Promise<void> {
    let nextCheck = new Date(Date.now() + RECHECK_MS);
    try {
      nextCheck = await this.advance();
      if (!(await this.publish())) nextCheck = new Date(Math.min(nextCheck.getTime(), Date.now() + 1000));
    } catch (err) {
      this.log.error('CA sync failed, retrying', { error: errorMessage(err) });
      nextCheck = new Date(Date.now() + 5000);
    }
    this.schedule(nextCheck);
  }

  private async advance(): Promise<Date> {
    const secret = this.secrets.get(this.opts.secretName, this.opts.secretNamespace);
    const loaded = secret ? stateFromSecretData(secret.data) : undefined;
    if (loaded && 'invalid' in loaded) this.log.error('CA Secret unusable, replacing it with a new CA', { reason: loaded.invalid });
    const state = loaded && !('invalid' in loaded) ? loaded : undefined;
    const now = new Date();
    const { step, nextCheck } = caStep(state, now);
    if (!step) {
      this.use(state!, now);
      return new Date(Math.min(nextCheck.getTime(), now.getTime() + RECHECK_MS));
    }
    const next = await applyStep(state, step, now, () => createCertificateAuthority('netwarden-ca', caValidity(now, this.opts.caValidityMs)));
    const written = await this.write(secret, next);
    if (written) {
      this.log.info('CA advanced', { step });
      this.use(next, now);
    } else if (state) {
      this.use(state, now); // lost a race: the winner's Secret arrives through the informer
    }
    // Either way the Secret's watch event brings the next pass; this one is in case it does not.
    return new Date(now.getTime() + 1000);
  }

  /** Creates or updates the Secret from what was read; false on a conflict (another replica wrote first). */
  private async write(read: V1Secret | undefined, state: CaState): Promise<boolean> {
    const { secretNamespace: namespace, secretName: name } = this.opts;
    const body: V1Secret = { metadata: { name, namespace, labels: MANAGED_BY, resourceVersion: read?.metadata?.resourceVersion }, type: 'Opaque', data: secretData(state) };
    try {
      if (read) await this.core.replaceNamespacedSecret({ namespace, name, body });
      else await this.core.createNamespacedSecret({ namespace, body });
      return true;
    } catch (err) {
      const code = apiErrorCode(err);
      if (code === 409) return false;
      throw err;
    }
  }

  private use(state: CaState, now: Date): void {
    this.state = state;
    const bundle = trustBundle(state, now);
    if (bundle === this.bundle) return;
    this.bundle = bundle;
    this.emit('change');
  }

  /** Writes the bundle to the ConfigMap unless it already holds it; false when another replica wrote in between. */
  private async publish(): Promise<boolean> {
    const bundle = this.bundle;
    if (!bundle || bundle === this.published) return true;
    const { configMapNamespace: namespace, configMapName: name } = this.opts;
    const body = { metadata: { name, namespace, labels: MANAGED_BY }, data: { [CA_BUNDLE_KEY]: bundle } };
    try {
      const current = await this.core.readNamespacedConfigMap({ namespace, name });
      if (current.data?.[CA_BUNDLE_KEY] !== bundle) {
        await this.core.replaceNamespacedConfigMap({ namespace, name, body: { ...body, metadata: { ...body.metadata, resourceVersion: current.metadata?.resourceVersion } } });
        this.log.info('CA bundle published', { configMap: `${namespace}/${name}`, certificates: bundle.split('BEGIN CERTIFICATE').length - 1 });
      }
    } catch (err) {
      const code = apiErrorCode(err);
      if (code === 409) return false;
      if (code !== 404) throw err;
      try {
        await this.core.createNamespacedConfigMap({ namespace, body });
      } catch (createErr) {
        if (apiErrorCode(createErr) === 409) return false;
        throw createErr;
      }
      this.log.info('CA bundle published', { configMap: `${namespace}/${name}` });
    }
    this.published = bundle;
    return true;
  }

  private schedule(at: Date): void {
    if (this.stopped.signal.aborted) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.requestSync(), Math.max(0, Math.min(at.getTime() - Date.now(), RECHECK_MS)));
  }
}

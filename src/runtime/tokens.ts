// Tokens of this process's own ServiceAccount for other audiences, from the TokenRequest API
// (serviceaccounts/token; the RBAC names the one ServiceAccount). Each audience's token is kept and
// renewed once 80 % of its lifetime has passed, as the kubelet renews projected tokens; a renewal
// that fails hands out the old token while it is still valid, and says so in the log.
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { errorMessage, loggerFor } from '../util/log.js';

export interface ServiceAccountTokensOptions {
  namespace: string;
  serviceAccount: string;
  /** Lifetime asked for; the API server may grant another (never under 10 minutes). Default 1 h. */
  expirationSeconds?: number;
  /** Audiences kept at most (one per node for the controller); the oldest goes first. */
  maxEntries?: number;
  /** Monotonic milliseconds; injectable for tests. */
  now?: () => number;
}

interface Kept {
  token: string;
  renewAt: number;
  /** Past this the token is no longer handed out, even when its renewal fails. */
  usableUntil: number;
}

/** Renew at this fraction of the lifetime; stop using an old token at the next. */
const RENEW_AT = 0.8;
const USABLE_UNTIL = 0.95;

export class ServiceAccountTokens {
  private readonly core: CoreV1Api;
  private readonly kept = new Map<string, Kept>();
  private readonly requests = new Map<string, Promise<string>>();
  private readonly expirationSeconds: number;
  private readonly maxEntries: number;
  private readonly now: () => number;
  private readonly log = loggerFor('tokens');

  constructor(
    kc: KubeConfig,
    private readonly opts: ServiceAccountTokensOptions,
  ) {
    this.core = kc.makeApiClient(CoreV1Api);
    this.expirationSeconds = opts.expirationSeconds ?? 3600;
    this.maxEntries = opts.maxEntries ?? 10_000;
    this.now = opts.now ?? (() => performance.now());
  }

  /** A token for `audience`: the kept one, or a new one when it is due for renewal. */
  async tokenFor(audience: string): Promise<string> {
    const kept = this.kept.get(audience);
    if (kept && this.now() < kept.renewAt) return kept.token;
    try {
      return await this.renew(audience);
    } catch (err) {
      if (kept && this.now() < kept.usableUntil) {
        this.log.warn('cannot renew a token; using the current one until it is nearly expired', { audience, error: errorMessage(err) });
        return kept.token;
      }
      throw new Error(`TokenRequest for ${this.opts.namespace}/${this.opts.serviceAccount} with audience ${audience} failed: ${errorMessage(err)}`);
    }
  }

  /** One TokenRequest per audience at a time, however many callers wait for it. */
  private renew(audience: string): Promise<string> {
    let request = this.requests.get(audience);
    if (!request) {
      request = this.request(audience).finally(() => this.requests.delete(audience));
      this.requests.set(audience, request);
    }
    return request;
  }

  private async request(audience: string): Promise<string> {
    const asked = this.now();
    const answer = await this.core.createNamespacedServiceAccountToken({
      namespace: this.opts.namespace,
      name: this.opts.serviceAccount,
      body: { spec: { audiences: [audience], expirationSeconds: this.expirationSeconds } },
    });
    const token = answer.status?.token;
    if (!token) throw new Error('the answer has no token');
    // The lifetime granted, measured on our own clock from when we asked (immune to clock skew).
    const lifetimeMs = (answer.spec?.expirationSeconds ?? this.expirationSeconds) * 1000;
    this.keep(audience, { token, renewAt: asked + lifetimeMs * RENEW_AT, usableUntil: asked + lifetimeMs * USABLE_UNTIL });
    return token;
  }

  private keep(audience: string, kept: Kept): void {
    this.kept.delete(audience);
    if (this.kept.size >= this.maxEntries) this.kept.delete(this.kept.keys().next().value!);
    this.kept.set(audience, kept);
  }
}

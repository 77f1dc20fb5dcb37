// Who may call Netwarden's HTTPS endpoints is decided by the cluster, not by a shared secret: the
// bearer token must pass a TokenReview, and the identity it belongs to must be allowed the action
// by a SubjectAccessReview (so plain RBAC Roles grant e.g. `get packetcaptures/files`).
import type { IncomingMessage } from 'node:http';
import { AuthenticationV1Api, AuthorizationV1Api, type KubeConfig, type V1UserInfo } from '@kubernetes/client-node';
import { errorMessage, loggerFor } from '../util/log.js';

export interface Caller {
  username: string;
  uid?: string;
  groups: string[];
  extra: Record<string, string[]>;
}

/** The action to authorize: a resource attribute as RBAC sees it. */
export interface AccessRequest {
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
}

/** An HTTP-shaped refusal: 401 (who are you?), 403 (not allowed), 503 (could not ask the cluster). */
export class AccessDenied extends Error {
  constructor(
    readonly status: 401 | 403 | 503,
    message: string,
  ) {
    super(message);
  }
}

interface CacheEntry<T> {
  value: T;
  expires: number;
}

export interface AccessReviewerOptions {
  /** How long a review result is reused; short, so a revoked binding bites quickly. */
  cacheTtlMs?: number;
  /** How long a denial is reused: shorter still, so a user just granted access is not kept waiting. */
  deniedCacheTtlMs?: number;
  /** Audiences the token must be for; the API server's default when unset. */
  audiences?: string[];
  maxCacheEntries?: number;
}

export class AccessReviewer {
  private readonly authn: AuthenticationV1Api;
  private readonly authz: AuthorizationV1Api;
  private readonly tokens = new Map<string, CacheEntry<Caller | AccessDenied>>();
  private readonly decisions = new Map<string, CacheEntry<AccessDenied | undefined>>();
  private readonly ttl: number;
  private readonly deniedTtl: number;
  private readonly maxEntries: number;
  private readonly log = loggerFor('auth');

  constructor(
    kc: KubeConfig,
    private readonly opts: AccessReviewerOptions = {},
  ) {
    this.authn = kc.makeApiClient(AuthenticationV1Api);
    this.authz = kc.makeApiClient(AuthorizationV1Api);
    this.ttl = opts.cacheTtlMs ?? 10_000;
    this.deniedTtl = opts.deniedCacheTtlMs ?? 2_000;
    this.maxEntries = opts.maxCacheEntries ?? 10_000;
  }

  /** Authenticates the request's bearer token and authorizes the action; throws AccessDenied. */
  async check(req: IncomingMessage, access: AccessRequest): Promise<Caller> {
    const caller = await this.authenticate(bearerToken(req));
    await this.authorize(caller, access);
    return caller;
  }

  async authenticate(token: string | undefined): Promise<Caller> {
    if (!token) throw new AccessDenied(401, 'no bearer token: send "Authorization: Bearer <token>"');
    const cached = this.cached(this.tokens, token);
    const result = cached !== undefined ? cached : await this.reviewToken(token);
    if (cached === undefined) this.remember(this.tokens, token, result);
    if (result instanceof AccessDenied) throw result;
    return result;
  }

  async authorize(caller: Caller, access: AccessRequest): Promise<void> {
    const key = JSON.stringify([caller.username, caller.groups, caller.extra, access]);
    const cached = this.decisions.get(key);
    let denial: AccessDenied | undefined;
    if (cached && cached.expires > Date.now()) denial = cached.value;
    else {
      denial = await this.reviewAccess(caller, access);
      this.remember(this.decisions, key, denial, denial ? this.deniedTtl : this.ttl);
    }
    if (denial) throw denial;
  }

  private async reviewToken(token: string): Promise<Caller | AccessDenied> {
    let status;
    try {
      const review = await this.authn.createTokenReview({ body: { spec: { token, ...(this.opts.audiences ? { audiences: this.opts.audiences } : {}) } } });
      status = review.status;
    } catch (err) {
      this.log.error('TokenReview failed', { error: errorMessage(err) });
      throw new AccessDenied(503, `cannot review the token: ${errorMessage(err)}`);
    }
    if (!status?.authenticated || !status.user?.username) return new AccessDenied(401, `invalid token${status?.error ? `: ${status.error}` : ''}`);
    return callerFrom(status.user);
  }

  private async reviewAccess(caller: Caller, access: AccessRequest): Promise<AccessDenied | undefined> {
    let status;
    try {
      const review = await this.authz.createSubjectAccessReview({
        body: {
          spec: {
            user: caller.username,
            uid: caller.uid,
            groups: caller.groups,
            extra: caller.extra,
            resourceAttributes: {
              verb: access.verb,
              group: access.group,
              resource: access.resource,
              subresource: access.subresource,
              namespace: access.namespace,
              name: access.name,
            },
          },
        },
      });
      status = review.status;
    } catch (err) {
      this.log.error('SubjectAccessReview failed', { error: errorMessage(err) });
      throw new AccessDenied(503, `cannot review access: ${errorMessage(err)}`);
    }
    if (status?.allowed) return undefined;
    const what = `${access.verb} ${access.resource}${access.subresource ? `/${access.subresource}` : ''}${access.group ? `.${access.group}` : ''}`;
    const where = access.namespace ? ` in namespace ${access.namespace}` : '';
    const why = status?.reason ? `: ${status.reason}` : '';
    return new AccessDenied(403, `${caller.username} may not ${what}${where}${why}`);
  }

  private cached<T>(cache: Map<string, CacheEntry<T>>, key: string): T | undefined {
    const entry = cache.get(key);
    if (!entry) return undefined;
    if (entry.expires > Date.now()) return entry.value;
    cache.delete(key);
    return undefined;
  }

  private remember<T>(cache: Map<string, CacheEntry<T>>, key: string, value: T, ttl = this.ttl): void {
    if (cache.size >= this.maxEntries) cache.delete(cache.keys().next().value!);
    cache.set(key, { value, expires: Date.now() + ttl });
  }
}

export function bearerToken(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  const match = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
  return match?.[1];
}

function callerFrom(user: V1UserInfo): Caller {
  return { username: user.username ?? '', uid: user.uid, groups: user.groups ?? [], extra: user.extra ?? {} };
}

// Who may call Netwarden's HTTPS endpoints is decided by the cluster, not by a shared secret: the
// bearer token must pass a TokenReview, and the identity it belongs to must be allowed the action
// by a SubjectAccessReview (so plain RBAC Roles grant e.g. `get packetcaptures/files`, or a
// ClusterRole's nonResourceURLs grant `get /metrics`).
//
// Anyone who can reach a port can send tokens, so reviewing must not be theirs to spend:
//  - verified tokens and rejected ones live in separate bounded caches, so a flood of random
//    tokens only ever evicts other rejections, never a caller that works;
//  - caches are keyed by a SHA-256 of the token, never the token itself;
//  - concurrent requests with the same token share one review;
//  - a token not seen before is reviewed only while two token buckets allow: one of the client's
//    address (so one flooding pod cannot use up the whole budget) and one of the process (which
//    bounds what any number of clients cost the API server); over either, the request gets 429
//    with Retry-After and the API server is not asked. A token verified before is re-reviewed when
//    its entry expires without waiting for the buckets, so callers that work keep working through
//    a flood.
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { AuthenticationV1Api, AuthorizationV1Api, type KubeConfig, type V1SubjectAccessReviewSpec, type V1UserInfo } from '@kubernetes/client-node';
import { errorMessage, loggerFor } from '../util/log.js';
import { ExpiringLru } from '../util/lru.js';
import { TokenBucket } from '../util/tokenbucket.js';
import { clientAddress } from './limits.js';
import { tokenReviews, tokenReviewsThrottled } from './metrics.js';

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

/** A non-resource URL as RBAC sees it (`nonResourceURLs: ["/metrics"]`, verb get). */
export interface NonResourceAccessRequest {
  verb: string;
  path: string;
}

/**
 * An HTTP-shaped refusal: 401 (who are you?), 403 (not allowed), 429 (too many unknown tokens:
 * retry after retryAfterSeconds), 503 (could not ask the cluster).
 */
export class AccessDenied extends Error {
  constructor(
    readonly status: 401 | 403 | 429 | 503,
    message: string,
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

export interface AccessReviewerOptions {
  /** How long an allowing access review is reused; short, so a revoked binding bites quickly. Default 10 s. */
  cacheTtlMs?: number;
  /** How long a denial (and a rejected token) is reused: shorter still, so a user just granted access is not kept waiting. Default 2 s. */
  deniedCacheTtlMs?: number;
  /** How long a verified token is reused before it is reviewed again. Default 60 s, as controller-runtime's metrics filter. */
  tokenCacheTtlMs?: number;
  /** Audiences the token must be for; the API server's default when unset. */
  audiences?: string[];
  /** Entries of each cache (verified tokens, rejected tokens, access decisions). Default 10,000. */
  maxCacheEntries?: number;
  /** TokenReviews of tokens not seen before, per second. Default 20. */
  tokenReviewsPerSecond?: number;
  /** ... and at once. Default 100 (a rollout of the agents on 100 nodes). */
  tokenReviewBurst?: number;
  /** The same from one client address. Default 5 per second, 25 at once. */
  tokenReviewsPerSecondPerClient?: number;
  tokenReviewBurstPerClient?: number;
}

interface Decision {
  denial: AccessDenied | undefined;
}

export class AccessReviewer {
  private readonly authn: AuthenticationV1Api;
  private readonly authz: AuthorizationV1Api;
  /** sha256(token) → who it is. Expired entries stay (until evicted) to mark the token as known. */
  private readonly verified: ExpiringLru<string, Caller>;
  private readonly rejected: ExpiringLru<string, AccessDenied>;
  private readonly decisions: ExpiringLru<string, Decision>;
  private readonly tokenReviewsInFlight = new Map<string, Promise<Caller | AccessDenied>>();
  private readonly accessReviewsInFlight = new Map<string, Promise<Decision>>();
  private readonly unknownTokens: TokenBucket;
  /** Client address → its bucket; dropped a minute after its last use (a full bucket again by then). */
  private readonly unknownTokensByClient: ExpiringLru<string, TokenBucket>;
  private readonly ttl: number;
  private readonly deniedTtl: number;
  private readonly tokenTtl: number;
  private readonly log = loggerFor('auth');

  constructor(
    kc: KubeConfig,
    private readonly opts: AccessReviewerOptions = {},
  ) {
    this.authn = kc.makeApiClient(AuthenticationV1Api);
    this.authz = kc.makeApiClient(AuthorizationV1Api);
    this.ttl = opts.cacheTtlMs ?? 10_000;
    this.deniedTtl = opts.deniedCacheTtlMs ?? 2_000;
    this.tokenTtl = opts.tokenCacheTtlMs ?? 60_000;
    const entries = opts.maxCacheEntries ?? 10_000;
    this.verified = new ExpiringLru(entries);
    this.rejected = new ExpiringLru(entries);
    this.decisions = new ExpiringLru(entries);
    this.unknownTokens = new TokenBucket(opts.tokenReviewsPerSecond ?? 20, opts.tokenReviewBurst ?? 100);
    this.unknownTokensByClient = new ExpiringLru(entries);
  }

  /** Authenticates the request's bearer token and authorizes the action; throws AccessDenied. */
  async check(req: IncomingMessage, access: AccessRequest | NonResourceAccessRequest): Promise<Caller> {
    const caller = await this.authenticate(bearerToken(req), clientAddress(req.socket));
    await this.authorize(caller, access);
    return caller;
  }

  /** `client`: the caller's address, for the per-client limit on reviews of unknown tokens. */
  async authenticate(token: string | undefined, client?: string): Promise<Caller> {
    if (!token) throw new AccessDenied(401, 'no bearer token: send "Authorization: Bearer <token>"');
    const key = createHash('sha256').update(token).digest('base64url');
    const known = this.verified.peek(key);
    if (known?.fresh) return known.value;
    const rejection = this.rejected.get(key);
    if (rejection) throw rejection;
    const result = await this.reviewTokenOnce(key, token, known !== undefined, client);
    if (result instanceof AccessDenied) throw result;
    return result;
  }

  async authorize(caller: Caller, access: AccessRequest | NonResourceAccessRequest): Promise<void> {
    const key = JSON.stringify([caller.username, caller.uid, caller.groups, caller.extra, access]);
    let decision = this.decisions.get(key);
    if (!decision) {
      decision = await coalesce(this.accessReviewsInFlight, key, async () => {
        const made = { denial: await this.reviewAccess(caller, access) };
        this.decisions.set(key, made, made.denial ? this.deniedTtl : this.ttl);
        return made;
      });
    }
    if (decision.denial) throw decision.denial;
  }

  /** One TokenReview per token at a time; an unknown token only within the rate limits. */
  private reviewTokenOnce(key: string, token: string, known: boolean, client: string | undefined): Promise<Caller | AccessDenied> {
    const pending = this.tokenReviewsInFlight.get(key);
    if (pending) return pending;
    if (!known) this.admitUnknownToken(client);
    return coalesce(this.tokenReviewsInFlight, key, async () => {
      const result = await this.reviewToken(token);
      if (result instanceof AccessDenied) {
        this.verified.delete(key);
        this.rejected.set(key, result, this.deniedTtl);
      } else {
        this.verified.set(key, result, this.tokenTtl);
      }
      return result;
    });
  }

  /** Throws 429 when the client's bucket or the process's has no review left for a token not seen before. */
  private admitUnknownToken(client: string | undefined): void {
    let bucket: TokenBucket | undefined;
    if (client !== undefined) {
      bucket = this.unknownTokensByClient.get(client) ?? new TokenBucket(this.opts.tokenReviewsPerSecondPerClient ?? 5, this.opts.tokenReviewBurstPerClient ?? 25);
      this.unknownTokensByClient.set(client, bucket, 60_000);
    }
    const over = bucket && !bucket.take() ? { bucket, who: `from ${client}` } : !this.unknownTokens.take() ? { bucket: this.unknownTokens, who: 'from all clients' } : undefined;
    if (!over) return;
    tokenReviewsThrottled.inc();
    const retryAfterSeconds = Math.max(1, Math.ceil(over.bucket.msUntilNext() / 1000));
    throw new AccessDenied(
      429,
      `too many requests with tokens not seen before ${over.who} (over ${over.bucket.ratePerSecond} TokenReviews per second); retry in ${retryAfterSeconds} s`,
      retryAfterSeconds,
    );
  }

  private async reviewToken(token: string): Promise<Caller | AccessDenied> {
    let status;
    try {
      const review = await this.authn.createTokenReview({ body: { spec: { token, ...(this.opts.audiences ? { audiences: this.opts.audiences } : {}) } } });
      status = review.status;
    } catch (err) {
      tokenReviews.inc({ result: 'error' });
      this.log.error('TokenReview failed', { error: errorMessage(err) });
      throw new AccessDenied(503, `cannot review the token: ${errorMessage(err)}`);
    }
    if (!status?.authenticated || !status.user?.username) {
      tokenReviews.inc({ result: 'unauthenticated' });
      return new AccessDenied(401, `invalid token${status?.error ? `: ${status.error}` : ''}`);
    }
    tokenReviews.inc({ result: 'authenticated' });
    return callerFrom(status.user);
  }

  private async reviewAccess(caller: Caller, access: AccessRequest | NonResourceAccessRequest): Promise<AccessDenied | undefined> {
    let status;
    try {
      const spec: V1SubjectAccessReviewSpec = { user: caller.username, uid: caller.uid, groups: caller.groups, extra: caller.extra, ...attributesOf(access) };
      status = (await this.authz.createSubjectAccessReview({ body: { spec } })).status;
    } catch (err) {
      this.log.error('SubjectAccessReview failed', { error: errorMessage(err) });
      throw new AccessDenied(503, `cannot review access: ${errorMessage(err)}`);
    }
    if (status?.allowed) return undefined;
    const why = status?.reason ? `: ${status.reason}` : '';
    return new AccessDenied(403, `${caller.username} may not ${describe(access)}${why}`);
  }
}

export function bearerToken(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  const match = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
  return match?.[1];
}

/** The one promise for `key` while it runs: concurrent callers wait for the same work. */
function coalesce<T>(inFlight: Map<string, Promise<T>>, key: string, work: () => Promise<T>): Promise<T> {
  const pending = inFlight.get(key);
  if (pending) return pending;
  const started = work().finally(() => inFlight.delete(key));
  inFlight.set(key, started);
  return started;
}

function isNonResource(access: AccessRequest | NonResourceAccessRequest): access is NonResourceAccessRequest {
  return 'path' in access;
}

function attributesOf(access: AccessRequest | NonResourceAccessRequest): Pick<V1SubjectAccessReviewSpec, 'resourceAttributes' | 'nonResourceAttributes'> {
  if (isNonResource(access)) return { nonResourceAttributes: { verb: access.verb, path: access.path } };
  const { verb, group, resource, subresource, namespace, name } = access;
  return { resourceAttributes: { verb, group, resource, subresource, namespace, name } };
}

function describe(access: AccessRequest | NonResourceAccessRequest): string {
  if (isNonResource(access)) return `${access.verb} ${access.path}`;
  const what = `${access.verb} ${access.resource}${access.subresource ? `/${access.subresource}` : ''}${access.group ? `.${access.group}` : ''}`;
  return `${what}${access.namespace ? ` in namespace ${access.namespace}` : ''}`;
}

function callerFrom(user: V1UserInfo): Caller {
  return { username: user.username ?? '', uid: user.uid, groups: user.groups ?? [], extra: user.extra ?? {} };
}

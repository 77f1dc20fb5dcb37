// The AccessReviewer against a fake TokenReview/SubjectAccessReview API: what a flood of bad
// tokens can and cannot do to it, one review for concurrent requests with one token, and the
// non-resource URL checks /metrics uses.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { AccessDenied, AccessReviewer, type AccessReviewerOptions } from '../../src/runtime/auth.js';
import { registry } from '../../src/runtime/metrics.js';
import { FakeReviewApi, selfSignedCertificate, type Tls } from './support/reviews.js';

const SCRAPER = 'system:serviceaccount:monitoring:prometheus';

/** The value of netwarden_token_reviews_total{result} in this process. */
async function reviewsCounted(result: string): Promise<number> {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === 'netwarden_token_reviews_total');
  return (metric?.values ?? []).filter((v) => v.labels.result === result).reduce((sum, v) => sum + v.value, 0);
}

async function refusal(p: Promise<unknown>): Promise<AccessDenied> {
  try {
    await p;
  } catch (err) {
    if (err instanceof AccessDenied) return err;
    throw err;
  }
  throw new Error('expected an AccessDenied');
}

const randomToken = () => randomBytes(24).toString('base64url');

describe('AccessReviewer', function () {
  let tls: Tls;
  let kube: FakeReviewApi;

  before(async () => {
    tls = selfSignedCertificate('nw-reviewer-');
    kube = new FakeReviewApi(tls);
    kube.tokens.set('scraper-token', SCRAPER);
    kube.tokens.set('late-token', SCRAPER);
    kube.nonResourceGrants.push({ user: SCRAPER, verb: 'get', path: '/metrics' });
    await kube.start();
  });
  after(async () => {
    await kube.stop();
    tls.remove();
  });

  const reviewer = (opts: AccessReviewerOptions = {}) => new AccessReviewer(kube.kubeConfig('reviewer-token'), opts);

  it('keeps serving a verified token through a flood of random ones, reviewing no more than the bucket allows', async function () {
    const r = reviewer({ tokenReviewBurst: 10, tokenReviewsPerSecond: 2, tokenReviewBurstPerClient: 1000, tokenReviewsPerSecondPerClient: 1000, maxCacheEntries: 100 });
    expect((await r.authenticate('scraper-token', '10.0.0.1')).username).to.equal(SCRAPER);
    const before = kube.tokenReviews;
    const started = Date.now();
    const outcomes = new Map<number, number>();
    for (let i = 0; i < 2000; i++) {
      const status = (await refusal(r.authenticate(randomToken(), '10.0.0.66'))).status;
      outcomes.set(status, (outcomes.get(status) ?? 0) + 1);
    }
    const seconds = (Date.now() - started) / 1000;
    const reviewed = kube.tokenReviews - before;
    expect(reviewed, 'TokenReviews made for the flood').to.be.at.most(10 + Math.ceil(2 * seconds) + 1);
    expect(outcomes.get(401)).to.equal(reviewed);
    expect(outcomes.get(429)).to.equal(2000 - reviewed);
    // 2,000 rejections passed through a cache of 100 entries: the verified token is in the other one.
    const afterFlood = kube.tokenReviews;
    expect((await r.authenticate('scraper-token', '10.0.0.1')).username).to.equal(SCRAPER);
    expect(kube.tokenReviews, 'no new review for the cached token').to.equal(afterFlood);
  });

  it("limits each client's unknown tokens, so one flooding address leaves the rest of the budget to others", async function () {
    const r = reviewer({ tokenReviewBurst: 50, tokenReviewsPerSecond: 1, tokenReviewBurstPerClient: 5, tokenReviewsPerSecondPerClient: 0.001 });
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) statuses.push((await refusal(r.authenticate(randomToken(), '10.0.0.66'))).status);
    expect(statuses.filter((s) => s === 401)).to.have.length(5);
    const throttled = await refusal(r.authenticate(randomToken(), '10.0.0.66'));
    expect(throttled.status).to.equal(429);
    expect(throttled.message).to.contain('from 10.0.0.66');
    expect(throttled.retryAfterSeconds).to.be.at.least(1);
    // Another address with a token never seen: reviewed, and it passes.
    expect((await r.authenticate('late-token', '10.0.0.2')).username).to.equal(SCRAPER);
  });

  it('re-reviews a known token whose entry expired even when the buckets are empty, and drops it once revoked', async function () {
    const r = reviewer({ tokenCacheTtlMs: 1, deniedCacheTtlMs: 1, tokenReviewBurst: 3, tokenReviewsPerSecond: 0.001 });
    kube.tokens.set('revocable-token', SCRAPER);
    await r.authenticate('revocable-token');
    for (let i = 0; i < 5; i++) await refusal(r.authenticate(randomToken()));
    expect((await refusal(r.authenticate(randomToken()))).status, 'buckets empty').to.equal(429);
    await new Promise((resolve) => setTimeout(resolve, 5));
    const before = kube.tokenReviews;
    expect((await r.authenticate('revocable-token')).username).to.equal(SCRAPER);
    expect(kube.tokenReviews).to.equal(before + 1);
    kube.tokens.delete('revocable-token');
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect((await refusal(r.authenticate('revocable-token'))).status).to.equal(401);
    // Now a rejection, it waits for the bucket like any unknown token.
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect((await refusal(r.authenticate('revocable-token'))).status).to.equal(429);
  });

  it('makes one TokenReview for concurrent requests with the same token, good or bad', async function () {
    const r = reviewer();
    kube.tokens.set('concurrent-token', SCRAPER);
    const before = kube.tokenReviews;
    const callers = await Promise.all(Array.from({ length: 20 }, () => r.authenticate('concurrent-token')));
    expect(callers.map((c) => c.username)).to.deep.equal(Array<string>(20).fill(SCRAPER));
    expect(kube.tokenReviews).to.equal(before + 1);
    const bad = randomToken();
    const refusals = await Promise.all(Array.from({ length: 20 }, () => refusal(r.authenticate(bad))));
    expect(refusals.map((e) => e.status)).to.deep.equal(Array<number>(20).fill(401));
    expect(kube.tokenReviews).to.equal(before + 2);
  });

  it('counts TokenReviews by result in netwarden_token_reviews_total', async function () {
    const r = reviewer();
    const [authenticated, unauthenticated] = [await reviewsCounted('authenticated'), await reviewsCounted('unauthenticated')];
    await r.authenticate('scraper-token');
    await refusal(r.authenticate(randomToken()));
    await refusal(r.authenticate(randomToken()));
    expect(await reviewsCounted('authenticated')).to.equal(authenticated + 1);
    expect(await reviewsCounted('unauthenticated')).to.equal(unauthenticated + 2);
  });

  it('authorizes a non-resource URL by SubjectAccessReview, and says who may not', async function () {
    const r = reviewer();
    const scraper = await r.authenticate('scraper-token');
    await r.authorize(scraper, { verb: 'get', path: '/metrics' });
    expect(kube.accessReviews.at(-1)).to.deep.include({ user: SCRAPER, path: '/metrics' });
    kube.tokens.set('nosy-token', 'system:serviceaccount:tenant:nosy');
    const nosy = await r.authenticate('nosy-token');
    const denied = await refusal(r.authorize(nosy, { verb: 'get', path: '/metrics' }));
    expect(denied.status).to.equal(403);
    expect(denied.message).to.equal('system:serviceaccount:tenant:nosy may not get /metrics');
  });
});

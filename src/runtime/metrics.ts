// Prometheus metrics of the controller runtime. One registry for the whole process: other
// components register their own metrics on `registry` so /metrics serves everything.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const registry = new Registry();
collectDefaultMetrics({ register: registry });

export const workqueueDepth = new Gauge({
  name: 'netwarden_workqueue_depth',
  help: 'Number of keys waiting in the work queue (not counting delayed keys).',
  labelNames: ['name'] as const,
  registers: [registry],
});

export const workqueueAdds = new Counter({
  name: 'netwarden_workqueue_adds_total',
  help: 'Keys added to the work queue (duplicates merged while waiting are not counted).',
  labelNames: ['name'] as const,
  registers: [registry],
});

export const workqueueRetries = new Counter({
  name: 'netwarden_workqueue_retries_total',
  help: 'Rate-limited re-additions of keys to the work queue.',
  labelNames: ['name'] as const,
  registers: [registry],
});

export const reconcileTotal = new Counter({
  name: 'netwarden_reconcile_total',
  help: 'Reconciliations per controller by result (success, error, requeue_after).',
  labelNames: ['controller', 'result'] as const,
  registers: [registry],
});

export const reconcileErrors = new Counter({
  name: 'netwarden_reconcile_errors_total',
  help: 'Reconciliations that failed.',
  labelNames: ['controller'] as const,
  registers: [registry],
});

export const reconcileDuration = new Histogram({
  name: 'netwarden_reconcile_duration_seconds',
  help: 'Time spent in one reconciliation.',
  labelNames: ['controller'] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  registers: [registry],
});

export const leaderGauge = new Gauge({
  name: 'netwarden_leader',
  help: '1 while this process holds the leader lease, else 0.',
  labelNames: ['identity', 'lease'] as const,
  registers: [registry],
});

export const informerSynced = new Gauge({
  name: 'netwarden_informer_synced',
  help: '1 once the informer has listed its resource at least once.',
  labelNames: ['informer'] as const,
  registers: [registry],
});

export const informerLists = new Counter({
  name: 'netwarden_informer_lists_total',
  help: 'Initial lists and re-lists of an informer by how they were read: via="watch-list" (a stream of events) or via="pages" (a paginated list: the API server does not offer watch-list).',
  labelNames: ['informer', 'via'] as const,
  registers: [registry],
});

export const informerRestarts = new Counter({
  name: 'netwarden_informer_restarts_total',
  help: 'List/watch restarts of an informer after an error (API server unreachable, watch broken).',
  labelNames: ['informer'] as const,
  registers: [registry],
});

export const tokenReviews = new Counter({
  name: 'netwarden_token_reviews_total',
  help: 'TokenReviews sent to the API server by result: authenticated, unauthenticated (the token is not valid), error (no answer).',
  labelNames: ['result'] as const,
  registers: [registry],
});

export const tokenReviewsThrottled = new Counter({
  name: 'netwarden_token_reviews_throttled_total',
  help: 'Requests with a token not seen before that were answered 429 instead of being reviewed: over the TokenReview rate limit.',
  registers: [registry],
});

// POST /droptail/:name/drops on the controller's HTTPS API: where agents deliver drop batches.
// Checks in this order, each with its own answer:
//   400 malformed DropTail name
//   401 no or bad bearer token (TokenReview with the audience CONTROLLER_AUDIENCE only, so an agent's
//       API server token, or the controller's, is refused) / 403 no `create droptails/drops`
//       (SubjectAccessReview) / 403 a token bound to no node (not a pod-bound projected token)
//   503 + Retry-After: this replica is not the leader, or its caches are not synced yet
//   404 no such DropTail
//   413 body over MAX_BATCH_BYTES
//   400 not a valid DropBatch (the reason names the JSON path; nothing of it is used)
//   403 the batch is for another node than the caller's token is bound to (logged; nothing of it
//       is used): an agent reports only the drops of its own node
//   503 + Retry-After: the pipeline is full (the batch is refused whole, the agent keeps it);
//       checked before the body is read too, by its declared length and with the bodies being
//       read counted in the queue's byte budget
//   202 {accepted}: queued; Events follow asynchronously, never waiting on DNS in the request.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { DropTail } from '../../apis/droptail.js';
import { DROPS_ACCESS, DROPS_PATH, MAX_BATCH_BYTES, type DropBatch, type DropBatchAccepted } from '../../apis/drops.js';
import { CONTROLLER_AUDIENCE, nodeOfCaller } from '../../apis/identity.js';
import type { AccessReviewer, Caller } from '../../runtime/auth.js';
import { HttpError, checkObjectName, readBody, sendJson, type HttpsApiServer } from '../../runtime/https.js';
import type { Informer } from '../../runtime/informer.js';
import { loggerFor } from '../../util/log.js';
import { BatchError, parseDropBatch } from './batch.js';
import { agentShedDrops, batchSequenceGaps, dropBatches } from './metrics.js';
import type { DropPipeline } from './pipeline.js';

export interface IntakeDeps {
  /** Reviews agents' tokens with the audience CONTROLLER_AUDIENCE (and no other). */
  reviewer: Pick<AccessReviewer, 'check'>;
  dropTails: Pick<Informer<DropTail>, 'get' | 'hasSynced'>;
  pipeline: Pick<DropPipeline, 'hasRoomFor' | 'pending' | 'submit'>;
  isLeader(): boolean;
}

/** Seconds an agent waits before re-sending after a 503. */
const RETRY_AFTER_SECONDS = 2;

export class DropIntake {
  /** Last sequence number per node, to notice batches an agent had to shed. */
  private readonly lastSequence = new Map<string, number>();
  /** Declared bytes of the batch bodies being read and decoded now. */
  private readingBytes = 0;
  private readonly log = loggerFor('droptail/intake');

  constructor(private readonly deps: IntakeDeps) {}

  register(api: HttpsApiServer): void {
    api.route('POST', DROPS_PATH, (req, res, params) => this.handle(req, res, params.name ?? ''));
  }

  async handle(req: IncomingMessage, res: ServerResponse, name: string): Promise<void> {
    try {
      const accepted = await this.accept(req, res, name);
      dropBatches.inc({ code: '202' });
      sendJson(res, 202, accepted);
    } catch (err) {
      const code = (err as { status?: number }).status ?? 500;
      dropBatches.inc({ code: String(code) });
      throw err;
    }
  }

  private async accept(req: IncomingMessage, res: ServerResponse, name: string): Promise<DropBatchAccepted> {
    checkObjectName('name', name);
    const caller = await this.deps.reviewer.check(req, { ...DROPS_ACCESS, name });
    const callerNode = this.nodeOf(caller, name);
    if (!this.deps.isLeader() || !this.deps.dropTails.hasSynced()) {
      res.setHeader('Retry-After', String(RETRY_AFTER_SECONDS));
      throw new HttpError(503, 'this controller replica is not the leader (or is still starting); retry');
    }
    if (!this.deps.dropTails.get(name)) throw new HttpError(404, `droptail ${name} not found`);
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_BATCH_BYTES) throw new HttpError(413, `request body of ${declared} bytes is over ${MAX_BATCH_BYTES} bytes; send smaller batches`);
    // Bodies being read share the queue's byte budget, checked before reading: under a flood
    // every agent sends at once, and bodies read side by side (then decoded: megabytes of objects
    // each) took more memory than the queue they were refused from.
    if (declared > 0 && !this.deps.pipeline.hasRoomFor(0, declared, this.readingBytes)) this.refuseFull(res);
    this.readingBytes += declared;
    try {
      const body = await readBody(req, MAX_BATCH_BYTES);
      const batch = this.parse(body);
      this.checkNode(batch, callerNode, caller, name);
      if (!this.deps.pipeline.hasRoomFor(batch.drops.length, body.length)) this.refuseFull(res);
      this.noteSequence(batch);
      this.deps.pipeline.submit(name, batch);
      return { accepted: batch.drops.length };
    } finally {
      this.readingBytes -= declared;
    }
  }

  private refuseFull(res: ServerResponse): never {
    res.setHeader('Retry-After', String(RETRY_AFTER_SECONDS));
    throw new HttpError(503, `drop pipeline full (${this.deps.pipeline.pending} drops pending); retry`);
  }

  /** The node the caller's token is bound to; a token bound to none speaks for no node. */
  private nodeOf(caller: Caller, dropTail: string): string {
    const node = nodeOfCaller(caller.extra);
    if (node) return node;
    this.log.warn('drop batch refused: the token is bound to no node', { droptail: dropTail, user: caller.username });
    throw new HttpError(
      403,
      `${caller.username} presented a token bound to no node: agents send drops with their pod's projected token of audience ${CONTROLLER_AUDIENCE} (--controller-token-file), which names their node`,
    );
  }

  /** An agent reports only its own node's drops: anything else would put forged Events on pods. */
  private checkNode(batch: DropBatch, callerNode: string, caller: Caller, dropTail: string): void {
    if (batch.node === callerNode) return;
    this.log.warn('drop batch refused: it is for another node than the agent is on', { droptail: dropTail, user: caller.username, callerNode, batchNode: batch.node });
    throw new HttpError(403, `the agent on node ${callerNode} may send drops only of node ${callerNode}, not of node ${batch.node}`);
  }

  private parse(body: Buffer): DropBatch {
    try {
      return parseDropBatch(body);
    } catch (err) {
      if (err instanceof BatchError) throw new HttpError(400, `invalid drop batch: ${err.message}`);
      throw err;
    }
  }

  /** Gaps in an agent's sequence and drops it reports shed are logged and counted, not refused. */
  private noteSequence(batch: DropBatch): void {
    const last = this.lastSequence.get(batch.node);
    if (last !== undefined && batch.sequence > last + 1) {
      batchSequenceGaps.inc({ node: batch.node }, batch.sequence - last - 1);
      this.log.warn('batches missing from agent', { node: batch.node, after: last, got: batch.sequence });
    }
    // A lower number means a restarted agent process: its numbering starts again.
    this.lastSequence.set(batch.node, batch.sequence);
    if (batch.shedSinceLastBatch > 0) {
      agentShedDrops.inc({ node: batch.node }, batch.shedSinceLastBatch);
      this.log.warn('agent shed drops', { node: batch.node, shed: batch.shedSinceLastBatch });
    }
  }
}

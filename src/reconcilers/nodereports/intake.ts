// POST /droptail/:name/report and POST /auditforwarder/:name/report on the controller's HTTPS API:
// where agents deliver their node reports (src/apis/nodereport.ts). Modelled on the drop intake
// (src/reconcilers/droptail/intake.ts), in this order, each with its own answer:
//   400 malformed object name
//   401 no or bad bearer token (TokenReview with the audience CONTROLLER_AUDIENCE only) / 403 no
//       `create droptails/reports` (or auditforwarders/reports) / 403 a token bound to no node
//   503 + Retry-After: this replica is not the leader, or its caches are not synced yet
//   404 no such object
//   413 body over MAX_REPORT_BYTES
//   400 not a valid report (the reason names the JSON path; nothing of it is kept)
//   403 the report is for another node than the caller's token is bound to (logged, not kept)
//   204: stored; the summary in status follows (rate-limited).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CONTROLLER_AUDIENCE, nodeOfCaller } from '../../apis/identity.js';
import { MAX_REPORT_BYTES, parseNodeReport, REPORT_PATHS, ReportError, reportAccess, type NodeReports, type ReportKind } from '../../apis/nodereport.js';
import type { AccessReviewer, Caller } from '../../runtime/auth.js';
import { HttpError, checkObjectName, readBody, type HttpsApiServer } from '../../runtime/https.js';
import { loggerFor } from '../../util/log.js';
import { nodeReports } from './metrics.js';
import type { NodeReportStore } from './store.js';

export interface ReportIntakeDeps<K extends ReportKind> {
  kind: K;
  /** Reviews agents' tokens with the audience CONTROLLER_AUDIENCE (and no other). */
  reviewer: Pick<AccessReviewer, 'check'>;
  objects: { get(name: string): unknown; hasSynced(): boolean };
  store: Pick<NodeReportStore<NodeReports[K]>, 'put' | 'leading'>;
  isLeader(): boolean;
}

/** Seconds an agent waits before re-sending after a 503. */
const RETRY_AFTER_SECONDS = 2;

export class NodeReportIntake<K extends ReportKind> {
  private readonly log;

  constructor(private readonly deps: ReportIntakeDeps<K>) {
    this.log = loggerFor(`${deps.kind}/reports`);
  }

  register(api: HttpsApiServer): void {
    api.route('POST', REPORT_PATHS[this.deps.kind], (req, res, params) => this.handle(req, res, params.name ?? ''));
  }

  async handle(req: IncomingMessage, res: ServerResponse, name: string): Promise<void> {
    try {
      await this.accept(req, res, name);
      nodeReports.inc({ kind: this.deps.kind, code: '204' });
    } catch (err) {
      nodeReports.inc({ kind: this.deps.kind, code: String((err as { status?: number }).status ?? 500) });
      throw err;
    }
  }

  private async accept(req: IncomingMessage, res: ServerResponse, name: string): Promise<void> {
    const { kind } = this.deps;
    checkObjectName('name', name);
    const caller = await this.deps.reviewer.check(req, { ...reportAccess(kind), name });
    const callerNode = this.nodeOf(caller, name);
    const leader = this.deps.isLeader();
    this.deps.store.leading(leader);
    if (!leader || !this.deps.objects.hasSynced()) {
      res.setHeader('Retry-After', String(RETRY_AFTER_SECONDS));
      throw new HttpError(503, 'this controller replica is not the leader (or is still starting); retry');
    }
    if (!this.deps.objects.get(name)) throw new HttpError(404, `${kind} ${name} not found`);
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_REPORT_BYTES) throw new HttpError(413, `request body of ${declared} bytes is over ${MAX_REPORT_BYTES} bytes`);
    const report = this.parse(await readBody(req, MAX_REPORT_BYTES));
    if (report.node !== callerNode) {
      // A report for another node would let one agent mark its peers healthy or failing.
      this.log.warn('node report refused: it is for another node than the agent is on', { [kind]: name, user: caller.username, callerNode, reportNode: report.node });
      throw new HttpError(403, `the agent on node ${callerNode} may report only node ${callerNode}, not node ${report.node}`);
    }
    this.deps.store.put(name, report);
    res.writeHead(204).end();
  }

  private nodeOf(caller: Caller, name: string): string {
    const node = nodeOfCaller(caller.extra);
    if (node) return node;
    this.log.warn('node report refused: the token is bound to no node', { [this.deps.kind]: name, user: caller.username });
    throw new HttpError(
      403,
      `${caller.username} presented a token bound to no node: agents report with their pod's projected token of audience ${CONTROLLER_AUDIENCE} (--controller-token-file), which names their node`,
    );
  }

  private parse(body: Buffer): NodeReports[K] {
    try {
      return parseNodeReport(this.deps.kind, body);
    } catch (err) {
      if (err instanceof ReportError) throw new HttpError(400, `invalid ${this.deps.kind} node report: ${err.message}`);
      throw err;
    }
  }
}

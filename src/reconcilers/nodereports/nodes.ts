// GET /droptail/:name/nodes and GET /auditforwarder/:name/nodes on the controller's HTTPS API: the
// per-node detail that status no longer carries, every selected node's last report as the leader
// has it. For users (their kubectl token, the API server's audience) who may `get droptails/status`
// (or auditforwarders/status); 503 on a standby, which has no reports.
import type { V1Node } from '@kubernetes/client-node';
import { NODES_PATHS, nodesAccess, type NodeReportList, type NodeReports, type ReportKind } from '../../apis/nodereport.js';
import { nodeMatches } from '../../apis/nodeselection.js';
import type { AccessReviewer } from '../../runtime/auth.js';
import { HttpError, checkObjectName, sendJson, type HttpsApiServer } from '../../runtime/https.js';
import type { Informer } from '../../runtime/informer.js';
import type { NodeReportStore } from './store.js';

export interface NodesRouteDeps<K extends ReportKind> {
  kind: K;
  reviewer: Pick<AccessReviewer, 'check'>;
  objects: { get(name: string): { spec?: { nodeSelector?: Readonly<Record<string, string>> | undefined } } | undefined; hasSynced(): boolean };
  nodes: Pick<Informer<V1Node>, 'get'>;
  store: Pick<NodeReportStore<NodeReports[K]>, 'reports' | 'isStale'>;
  isLeader(): boolean;
}

export function registerNodesRoute<K extends ReportKind>(api: HttpsApiServer, deps: NodesRouteDeps<K>): void {
  api.route('GET', NODES_PATHS[deps.kind], async (req, res, params) => {
    const name = params.name ?? '';
    checkObjectName('name', name);
    await deps.reviewer.check(req, { ...nodesAccess(deps.kind), name });
    if (!deps.isLeader() || !deps.objects.hasSynced()) {
      res.setHeader('Retry-After', '2');
      throw new HttpError(503, 'this controller replica is not the leader (or is still starting): only the leader has the reports; retry');
    }
    const obj = deps.objects.get(name);
    if (!obj) throw new HttpError(404, `${deps.kind} ${name} not found`);
    const selected = (node: string): boolean => {
      const n = deps.nodes.get(node);
      return n !== undefined && nodeMatches(obj.spec?.nodeSelector, n);
    };
    const entries = deps.store.reports(name, selected).sort((a, b) => a.node.localeCompare(b.node));
    const body: NodeReportList<NodeReports[K]> = {
      kind: deps.kind,
      name,
      nodes: entries.map((e) => ({ node: e.node, receivedAt: new Date(e.receivedAt).toISOString(), stale: deps.store.isStale(e), report: e.report })),
    };
    sendJson(res, 200, body);
  });
}

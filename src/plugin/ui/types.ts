// The JSON the console's backend (src/plugin/ui/api.ts) answers and its page (ui/) reads. Types
// only: the page's bundle imports this file, so nothing here may need Node.

/** What one SelfSubjectAccessReview said about one action. */
export interface AccessDecision {
  allowed: boolean;
  /** e.g. "get packetcaptures/files in namespace storefront" */
  action: string;
  /** Shown when not allowed: who may not do what, and the authorizer's reason if it gave one. */
  reason: string;
}

export type CaptureAction = 'list' | 'create' | 'stop' | 'delete' | 'download' | 'deleteFiles';
export type ClusterAction = 'listDropTails' | 'listAuditForwarders' | 'auditNodes' | 'listNamespaces';

export interface ContextInfo {
  user: string;
  groups: string[];
  context: string;
  server: string;
  namespace: string;
  /** Namespaces the user may list, else just the kubeconfig's. */
  namespaces: string[];
  controllerUrl: string;
  /** Why downloads and per-node reports cannot work, when the controller connection failed. */
  controllerError?: string;
  access: Record<ClusterAction, AccessDecision>;
}

export interface CaptureNodeFiles {
  node: string;
  state?: string;
  bytes?: number;
  packets?: number;
  fileNames?: string[];
  message?: string;
}

export interface CaptureView {
  name: string;
  namespace: string;
  created: string;
  phase: string;
  podCount: number;
  fileCount: number;
  totalBytes: number;
  pods: Array<{ pod: string; node?: string; ip?: string }>;
  files: CaptureNodeFiles[];
  ended: boolean;
  /** Status fields this console does not know (e.g. another version's retention or export); shown as they are. */
  extraStatus: Record<string, unknown>;
  message?: string;
}

export interface CaptureList {
  namespace: string;
  captures: CaptureView[];
  access: Record<CaptureAction, AccessDecision>;
  error?: string;
}

export interface SummaryFile {
  /** <node>/<file> inside the zip */
  entry: string;
  node: string;
  pod: string;
  interface: string;
  packets: number;
  lines: string[];
  truncated: boolean;
}

export interface CaptureSummary {
  namespace: string;
  name: string;
  files: SummaryFile[];
  missingNodes: string[];
}

export interface DropEndpointView {
  ip: string;
  kind?: string;
  namespace?: string;
  name?: string;
}

export interface DropView {
  dropTail: string;
  time: string;
  node: string;
  protocol?: string;
  src?: DropEndpointView;
  dst?: DropEndpointView;
  srcPort?: number;
  dstPort?: number;
  direction?: string;
  count: number;
  prefix?: string;
}

export interface DropTailView {
  name: string;
  nodeCount: number;
  unhealthyNodes: number;
  totalDrops: number;
  dropsSeen: number;
  gaps: number;
  lastDropTime?: string;
  problems: Array<{ node: string; time: string; message: string }>;
}

export interface DropsOverview {
  dropTails: DropTailView[];
  drops: DropView[];
  error?: string;
}

export interface AuditNodeView {
  node: string;
  receivedAt: string;
  stale: boolean;
  lagBytes?: number;
  shippedEvents?: number;
  shippedBytes?: number;
  gaps?: number;
  lastGap?: string;
  lastError?: string;
  lastOffloadTime?: string;
  file?: string;
}

export interface AuditForwarderView {
  name: string;
  sink: string;
  nodeCount: number;
  unhealthyNodes: number;
  shippedEvents: number;
  shippedBytes: number;
  lagBytes: number;
  gaps: number;
  problems: Array<{ node: string; time: string; message: string }>;
  nodes: AuditNodeView[];
  /** Why the per-node reports are not shown (forbidden, or the controller unreachable). */
  nodesError?: string;
}

export interface AuditOverview {
  forwarders: AuditForwarderView[];
  error?: string;
}

export interface EventView {
  type: string;
  reason: string;
  message: string;
  count: number;
  lastSeen: string;
  source: string;
}

export interface EventList {
  namespace: string;
  pod: string;
  events: EventView[];
  error?: string;
}

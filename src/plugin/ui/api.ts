// The console's JSON endpoints. Each one makes only the calls its page needs, with the user's own
// kubeconfig (the Kubernetes API) and bearer token (the controller's download and node-report
// endpoints), so the console can do nothing `kubectl` and `kubectl netwarden` could not.
//
//   GET    /api/context                               who, where, and the cluster-wide access decisions
//   GET    /api/drops                                 DropTails and their recent drops
//   GET    /api/events?namespace=&pod=                a pod's Events (where drops are reported)
//   GET    /api/captures?namespace=                   PacketCaptures of a namespace + access decisions
//   POST   /api/captures?namespace=                   body: the YAML shown in the form, created as is
//   POST   /api/captures/:ns/:name/stop               spec.endTime = now
//   DELETE /api/captures/:ns/:name                    deletes the object (the agents remove its files)
//   DELETE /api/captures/:ns/:name/files              deletes the files of an ended capture
//   GET    /api/captures/:ns/:name/files.zip          the controller's zip, streamed through
//   GET    /api/captures/:ns/:name/summary            per-packet summary of every pcap in the zip
//   GET    /api/auditforwarders                       AuditForwarders with every node's report
import { mkdtemp, rm } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { text } from 'node:stream/consumers';
import { AuthenticationV1Api, AuthorizationV1Api, CoreV1Api, CustomObjectsApi, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import { downloadPath, EXPECTED_BYTES_HEADER, MISSING_NODES_HEADER, pcapFileNameParts } from '../../apis/capturefiles.js';
import { AuditForwarderType, DropTailType, GROUP, PacketCaptureType, VERSION } from '../../apis/meta.js';
import type { AuditNodeReport, NodeReportList } from '../../apis/nodereport.js';
import type { PacketCapture } from '../../apis/packetcapture.js';
import type { DropTail } from '../../apis/droptail.js';
import type { AuditForwarder } from '../../apis/auditforwarder.js';
import { writeSummary } from '../../pcap/summary.js';
import { deleteCaptureFiles, downloadCapture } from '../capture.js';
import { PluginError, request, type Connection } from '../client.js';
import { listZip, openZipEntry } from '../zip.js';
import { sendJson, type ApiHandler } from './server.js';
import type {
  AccessDecision, AuditForwarderView, AuditOverview, CaptureAction, CaptureList, CaptureSummary, CaptureView, ClusterAction, ContextInfo, DropsOverview, DropView, EventList, SummaryFile,
} from './types.js';

/** Lines of packet summary sent per file: a page of text, not a whole capture. */
export const SUMMARY_LINES_PER_FILE = 500;
const MAX_BODY_BYTES = 256 * 1024;
/** How long an access decision is reused: a Role granted or taken away shows within this. */
export const ACCESS_CACHE_MS = 5_000;

export interface ApiContext {
  kc: KubeConfig;
  namespace: string;
  /** The controller connection, or why there is none (a client-certificate user without --token). */
  controller: Connection | { error: string };
  controllerUrl: string;
}

interface AccessCheck {
  verb: string;
  resource: string;
  subresource?: string;
  group?: string;
  namespace?: string;
}

function describe(check: AccessCheck): string {
  const res = `${check.resource}${check.subresource ? `/${check.subresource}` : ''}`;
  return `${check.verb} ${res}${check.namespace ? ` in namespace ${check.namespace}` : ' (cluster-wide)'}`;
}

function errorMessage(err: unknown): string {
  if (err instanceof PluginError) return err.message;
  const body = typeof err === 'object' && err !== null ? (err as { body?: unknown }).body : undefined;
  if (typeof body === 'string') {
    try {
      const parsed = JSON.parse(body) as { message?: string };
      if (parsed.message) return parsed.message;
    } catch {
      // not a Status
    }
  }
  if (body && typeof body === 'object' && typeof (body as { message?: unknown }).message === 'string') return (body as { message: string }).message;
  return err instanceof Error ? err.message : String(err);
}

function statusOf(err: unknown): number {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  return typeof code === 'number' && code >= 400 && code < 600 ? code : 502;
}

export class ConsoleApi {
  private readonly custom: CustomObjectsApi;
  private readonly core: CoreV1Api;
  private readonly authz: AuthorizationV1Api;
  private readonly authn: AuthenticationV1Api;
  private whoAmI: Promise<{ user: string; groups: string[] }> | undefined;
  /** The pages poll every few seconds: an access decision is reused this long instead of asked again. */
  private readonly decisions = new Map<string, { at: number; decision: Promise<AccessDecision> }>();

  constructor(private readonly ctx: ApiContext) {
    this.custom = ctx.kc.makeApiClient(CustomObjectsApi);
    this.core = ctx.kc.makeApiClient(CoreV1Api);
    this.authz = ctx.kc.makeApiClient(AuthorizationV1Api);
    this.authn = ctx.kc.makeApiClient(AuthenticationV1Api);
  }

  readonly handle: ApiHandler = async (req, res, url) => {
    const method = req.method ?? 'GET';
    const parts = url.pathname.split('/').slice(2).map((p) => decodeURIComponent(p));
    try {
      if (method === 'GET' && url.pathname === '/api/context') return json(res, await this.context());
      if (method === 'GET' && url.pathname === '/api/drops') return json(res, await this.drops());
      if (method === 'GET' && url.pathname === '/api/events') return json(res, await this.events(param(url, 'namespace'), param(url, 'pod')));
      if (method === 'GET' && url.pathname === '/api/auditforwarders') return json(res, await this.auditForwarders());
      if (parts[0] === 'captures' && parts.length === 1) {
        const ns = url.searchParams.get('namespace') || this.ctx.namespace;
        if (method === 'GET') return json(res, await this.captures(ns));
        if (method === 'POST') return json(res, await this.createCapture(ns, await readBody(req)), 201);
      }
      if (parts[0] === 'captures' && parts.length >= 3) {
        const [, ns, name, what] = parts as [string, string, string, string | undefined];
        if (method === 'POST' && what === 'stop') return json(res, await this.stopCapture(ns, name));
        if (method === 'DELETE' && what === undefined) return json(res, await this.deleteCapture(ns, name));
        if (method === 'DELETE' && what === 'files') return json(res, { message: await deleteCaptureFiles(this.connection(ns), name) });
        if (method === 'GET' && what === 'files.zip') return (await this.proxyZip(ns, name, res), true);
        if (method === 'GET' && what === 'summary') return json(res, await this.summary(ns, name));
      }
      return false;
    } catch (err) {
      if (!res.headersSent) sendJson(res, statusOf(err), { message: errorMessage(err) });
      else res.destroy();
      return true;
    }
  };

  /** One SelfSubjectAccessReview (reused for ACCESS_CACHE_MS): what the API server's authorizers say this user may do. */
  can(check: AccessCheck): Promise<AccessDecision> {
    const key = `${check.group ?? GROUP}|${describe(check)}`;
    const cached = this.decisions.get(key);
    if (cached && Date.now() - cached.at < ACCESS_CACHE_MS) return cached.decision;
    const decision = this.review(check);
    this.decisions.set(key, { at: Date.now(), decision });
    return decision;
  }

  private async review(check: AccessCheck): Promise<AccessDecision> {
    const action = describe(check);
    try {
      const review = await this.authz.createSelfSubjectAccessReview({
        body: {
          apiVersion: 'authorization.k8s.io/v1',
          kind: 'SelfSubjectAccessReview',
          spec: { resourceAttributes: { verb: check.verb, group: check.group ?? GROUP, resource: check.resource, subresource: check.subresource, namespace: check.namespace } },
        },
      });
      const allowed = review.status?.allowed === true && review.status.denied !== true;
      const { user } = await this.identity();
      const why = [review.status?.reason, review.status?.evaluationError].filter((s): s is string => !!s).join('; ');
      return { allowed, action, reason: allowed ? '' : `forbidden: ${user} may not ${action}${why ? ` (${why})` : ' (no RBAC rule allows it)'}` };
    } catch (err) {
      return { allowed: false, action, reason: `forbidden: the access review for ${action} failed: ${errorMessage(err)}` };
    }
  }

  private identity(): Promise<{ user: string; groups: string[] }> {
    this.whoAmI ??= this.authn
      .createSelfSubjectReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' } })
      .then((r) => ({ user: r.status?.userInfo?.username ?? 'this user', groups: r.status?.userInfo?.groups ?? [] }))
      .catch(() => ({ user: this.ctx.kc.getCurrentUser()?.name ?? 'this user', groups: [] }));
    return this.whoAmI;
  }

  private connection(namespace: string): Connection {
    if ('error' in this.ctx.controller) throw new PluginError(this.ctx.controller.error, 1);
    return { ...this.ctx.controller, namespace };
  }

  async context(): Promise<ContextInfo> {
    const [who, listDropTails, listAuditForwarders, auditNodes, listNamespaces] = await Promise.all([
      this.identity(),
      this.can({ verb: 'list', resource: DropTailType.plural }),
      this.can({ verb: 'list', resource: AuditForwarderType.plural }),
      this.can({ verb: 'get', resource: AuditForwarderType.plural, subresource: 'status' }),
      this.can({ verb: 'list', group: '', resource: 'namespaces' }),
    ]);
    let namespaces = [this.ctx.namespace];
    if (listNamespaces.allowed) {
      const list = await this.core.listNamespace().catch(() => undefined);
      const names = (list?.items ?? []).map((n) => n.metadata?.name ?? '').filter(Boolean);
      if (names.length) namespaces = [...new Set([this.ctx.namespace, ...names])].sort();
    }
    const access: Record<ClusterAction, AccessDecision> = { listDropTails, listAuditForwarders, auditNodes, listNamespaces };
    const cluster = this.ctx.kc.getCurrentCluster();
    return {
      user: who.user,
      groups: who.groups,
      context: this.ctx.kc.getCurrentContext(),
      server: cluster?.server ?? '',
      namespace: this.ctx.namespace,
      namespaces,
      controllerUrl: this.ctx.controllerUrl,
      ...('error' in this.ctx.controller ? { controllerError: this.ctx.controller.error } : {}),
      access,
    };
  }

  async drops(): Promise<DropsOverview> {
    let list: { items: DropTail[] };
    try {
      list = (await this.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: DropTailType.plural })) as { items: DropTail[] };
    } catch (err) {
      return { dropTails: [], drops: [], error: errorMessage(err) };
    }
    const drops: DropView[] = [];
    const dropTails = list.items.map((dt) => {
      const s = dt.status ?? {};
      for (const d of s.recentDrops ?? []) drops.push({ ...d, dropTail: dt.metadata.name ?? '', count: d.count ?? 1 });
      return {
        name: dt.metadata.name ?? '',
        nodeCount: s.nodeCount ?? 0,
        unhealthyNodes: s.unhealthyNodes ?? 0,
        totalDrops: s.totalDrops ?? 0,
        dropsSeen: s.dropsSeen ?? 0,
        gaps: s.gaps ?? 0,
        ...(s.lastDropTime ? { lastDropTime: s.lastDropTime } : {}),
        problems: s.problems ?? [],
      };
    });
    drops.sort((a, b) => (a.time < b.time ? 1 : a.time > b.time ? -1 : 0));
    return { dropTails, drops };
  }

  async events(namespace: string, pod: string): Promise<EventList> {
    try {
      const list = await this.core.listNamespacedEvent({ namespace, fieldSelector: `involvedObject.name=${pod}` });
      const events = list.items
        .map((e) => ({
          type: e.type ?? '',
          reason: e.reason ?? '',
          message: e.message ?? '',
          count: e.count ?? e.series?.count ?? 1,
          lastSeen: String(e.lastTimestamp ?? e.eventTime ?? e.metadata.creationTimestamp ?? ''),
          source: e.reportingComponent || e.source?.component || '',
        }))
        .sort((a, b) => (a.lastSeen < b.lastSeen ? 1 : -1));
      return { namespace, pod, events };
    } catch (err) {
      return { namespace, pod, events: [], error: errorMessage(err) };
    }
  }

  async captureAccess(namespace: string): Promise<Record<CaptureAction, AccessDecision>> {
    const r = PacketCaptureType.plural;
    const [list, create, stop, del, download, deleteFiles] = await Promise.all([
      this.can({ verb: 'list', resource: r, namespace }),
      this.can({ verb: 'create', resource: r, namespace }),
      this.can({ verb: 'patch', resource: r, namespace }),
      this.can({ verb: 'delete', resource: r, namespace }),
      this.can({ verb: 'get', resource: r, subresource: 'files', namespace }),
      this.can({ verb: 'delete', resource: r, subresource: 'files', namespace }),
    ]);
    return { list, create, stop, delete: del, download, deleteFiles };
  }

  async captures(namespace: string): Promise<CaptureList> {
    const access = await this.captureAccess(namespace);
    try {
      const list = (await this.custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PacketCaptureType.plural })) as { items: PacketCapture[] };
      return { namespace, access, captures: list.items.map(captureView).sort((a, b) => (a.created < b.created ? 1 : -1)) };
    } catch (err) {
      return { namespace, access, captures: [], error: errorMessage(err) };
    }
  }

  /** Creates the object from the very YAML the form showed: what the user read is what is applied. */
  async createCapture(namespace: string, body: string): Promise<CaptureView> {
    let obj: unknown;
    try {
      obj = parseYaml(body);
    } catch (err) {
      throw Object.assign(new Error(`the YAML does not parse: ${errorMessage(err)}`), { code: 400 });
    }
    const o = obj as Partial<PacketCapture> | null;
    if (!o || typeof o !== 'object' || o.kind !== PacketCaptureType.kind || o.apiVersion !== `${GROUP}/${VERSION}`) {
      throw Object.assign(new Error(`the YAML must be one ${GROUP}/${VERSION} ${PacketCaptureType.kind}`), { code: 400 });
    }
    const ns = o.metadata?.namespace ?? namespace;
    const created = (await this.custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PacketCaptureType.plural, body: o })) as PacketCapture;
    return captureView(created);
  }

  /** Stopping is setting spec.endTime to now: whichever limit comes first ends a capture. */
  async stopCapture(namespace: string, name: string): Promise<CaptureView> {
    const patched = (await this.custom.patchNamespacedCustomObject(
      { group: GROUP, version: VERSION, namespace, plural: PacketCaptureType.plural, name, body: { spec: { endTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), duration: null } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    )) as PacketCapture;
    return captureView(patched);
  }

  async deleteCapture(namespace: string, name: string): Promise<{ message: string }> {
    await this.custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PacketCaptureType.plural, name });
    return { message: `packetcapture ${namespace}/${name} deleted; its agents remove its files` };
  }

  /** The controller's zip, passed through as it streams, with the byte count to expect for the page's progress bar. */
  async proxyZip(namespace: string, name: string, res: ServerResponse): Promise<void> {
    const upstream = await request(this.connection(namespace), 'GET', downloadPath(namespace, name));
    const headers: Record<string, string> = { 'content-type': 'application/zip', 'content-disposition': `attachment; filename="${namespace}-${name}.zip"` };
    for (const h of [EXPECTED_BYTES_HEADER, MISSING_NODES_HEADER, 'content-length']) {
      const v = upstream.headers[h];
      if (typeof v === 'string') headers[h] = v;
    }
    res.writeHead(200, headers);
    upstream.once('aborted', () => res.destroy());
    await pipeline(upstream, res).catch(() => res.destroy());
  }

  async summary(namespace: string, name: string): Promise<CaptureSummary> {
    const dir = await mkdtemp(path.join(tmpdir(), 'netwarden-ui-'));
    try {
      const { zipPath, missingNodes } = await downloadCapture(this.connection(namespace), name, dir, { progress: false });
      const entries = (await listZip(zipPath)).filter((e) => /\.pcap(ng)?$/.test(e.name)).sort((a, b) => (a.name < b.name ? -1 : 1));
      const files: SummaryFile[] = [];
      for (const entry of entries) {
        const [node = '', file = entry.name] = entry.name.split('/');
        const parts = pcapFileNameParts(file);
        const lines: string[] = [];
        let truncated = false;
        const sink = new Writable({
          write(chunk: Buffer | string, _enc, done) {
            if (lines.length < SUMMARY_LINES_PER_FILE) lines.push(String(chunk).replace(/\n$/, ''));
            else truncated = true;
            done();
          },
        });
        const { packets } = await writeSummary(await openZipEntry(zipPath, entry), sink);
        files.push({ entry: entry.name, node, pod: parts?.pod ?? '', interface: parts?.iface ?? '', packets, lines, truncated });
      }
      return { namespace, name, files, missingNodes };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  async auditForwarders(): Promise<AuditOverview> {
    let list: { items: AuditForwarder[] };
    try {
      list = (await this.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: AuditForwarderType.plural })) as { items: AuditForwarder[] };
    } catch (err) {
      return { forwarders: [], error: errorMessage(err) };
    }
    const canNodes = await this.can({ verb: 'get', resource: AuditForwarderType.plural, subresource: 'status' });
    const forwarders = await Promise.all(
      list.items.map(async (af): Promise<AuditForwarderView> => {
        const s = af.status ?? {};
        const name = af.metadata.name ?? '';
        const view: AuditForwarderView = {
          name,
          sink: Object.keys(af.spec?.sink ?? {}).join(', '),
          nodeCount: s.nodeCount ?? 0,
          unhealthyNodes: s.unhealthyNodes ?? 0,
          shippedEvents: s.shippedEvents ?? 0,
          shippedBytes: s.shippedBytes ?? 0,
          lagBytes: s.lagBytes ?? 0,
          gaps: s.gaps ?? 0,
          problems: s.problems ?? [],
          nodes: [],
        };
        if (!canNodes.allowed) return { ...view, nodesError: canNodes.reason };
        try {
          const res = await request(this.connection(''), 'GET', `/auditforwarder/${encodeURIComponent(name)}/nodes`);
          const reports = JSON.parse(await text(res)) as NodeReportList<AuditNodeReport>;
          view.nodes = reports.nodes
            .map((n) => ({
              node: n.node, receivedAt: n.receivedAt, stale: n.stale,
              lagBytes: n.report.lagBytes, shippedEvents: n.report.shippedEvents, shippedBytes: n.report.shippedBytes, gaps: n.report.gaps,
              lastGap: n.report.lastGap, lastError: n.report.lastError, lastOffloadTime: n.report.lastOffloadTime, file: n.report.file,
            }))
            .sort((a, b) => (a.node < b.node ? -1 : 1));
        } catch (err) {
          view.nodesError = errorMessage(err);
        }
        return view;
      }),
    );
    return { forwarders: forwarders.sort((a, b) => (a.name < b.name ? -1 : 1)) };
  }
}

const KNOWN_STATUS = new Set(['observedGeneration', 'conditions', 'phase', 'targets', 'files', 'podCount', 'fileCount', 'totalBytes']);
const ENDED_PHASES = new Set(['Finished', 'Stopped', 'Failed']);

export function captureView(pc: PacketCapture): CaptureView {
  const s = pc.status ?? {};
  const extraStatus: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s)) if (!KNOWN_STATUS.has(k)) extraStatus[k] = v;
  const ready = s.conditions?.find((c) => c.type === 'Ready');
  const phase = s.phase ?? 'Pending';
  return {
    name: pc.metadata.name ?? '',
    namespace: pc.metadata.namespace ?? '',
    created: isoTime(pc.metadata.creationTimestamp),
    phase,
    podCount: s.podCount ?? s.targets?.length ?? 0,
    fileCount: s.fileCount ?? 0,
    totalBytes: s.totalBytes ?? 0,
    pods: (s.targets ?? []).map((t) => ({ pod: t.pod, node: t.node, ip: t.ip })),
    files: (s.files ?? []).map((f) => ({ node: f.node, state: f.state, bytes: f.bytes, packets: f.packets, fileNames: f.fileNames, message: f.message })).sort((a, b) => (a.node < b.node ? -1 : 1)),
    ended: ENDED_PHASES.has(phase),
    extraStatus,
    ...(ready?.message ? { message: ready.message } : {}),
  };
}

function json(res: ServerResponse, body: unknown, status = 200): true {
  sendJson(res, status, body);
  return true;
}

function param(url: URL, name: string): string {
  const v = url.searchParams.get(name);
  if (!v) throw Object.assign(new Error(`missing ?${name}=`), { code: 400 });
  return v;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw Object.assign(new Error('request body too large'), { code: 413 });
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Custom objects arrive as plain JSON (a string), typed objects with a Date. */
function isoTime(t: Date | string | undefined): string {
  return t === undefined ? '' : typeof t === 'string' ? t : t.toISOString();
}

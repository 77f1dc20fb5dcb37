// The controller's side of the capture file API (src/apis/capturefiles.ts): one zip streamed from
// every node's agent, and deleting the files once the capture ended. Callers are authenticated by
// TokenReview and authorized by a SubjectAccessReview for packetcaptures/files (verb get or delete)
// on that very capture, so RBAC decides who reads packets.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { V1Node } from '@kubernetes/client-node';
import { Readable } from 'node:stream';
import JSZip from 'jszip';
import {
  CAPTURE_FILES_ACCESS,
  DELETE_FILES_ROUTE,
  DOWNLOAD_ROUTE,
  EXPECTED_BYTES_HEADER,
  MISSING_NODES_FILE,
  MERGE_PARAM,
  MISSING_NODES_HEADER,
  mergedFileName,
  nodeFileName,
  pcapFileNameParts,
  type CaptureFile,
  type CaptureFileListing,
  type CaptureFilesVerb,
} from '../../apis/capturefiles.js';
import type { PacketCapture } from '../../apis/packetcapture.js';
import type { AccessReviewer } from '../../runtime/auth.js';
import { HttpError, checkObjectName, sendJson, type HttpsApiServer } from '../../runtime/https.js';
import type { Informer } from '../../runtime/informer.js';
import type { TrustBundle } from '../../runtime/tls.js';
import { errorMessage, loggerFor } from '../../util/log.js';
import { concatenated, mergePcapng, type MergeInput } from '../../util/pcapngmerge.js';
import { AgentError, AgentFilesClient } from './agentclient.js';
import { captureDownloadBytes, captureDownloads } from './metrics.js';
import { captureEnded, nodesWithFiles } from './phase.js';

/** Agent downloads open at once: jszip asks for every stream up front, but consumes them in order. */
const PARALLEL_FETCHES = 2;

/** What the endpoints use of the controller's context (a ControllerContext is one). */
export interface CaptureFileApiContext {
  api?: HttpsApiServer | undefined;
  reviewer: Pick<AccessReviewer, 'check'>;
  /** Only the leader's caches are filled. */
  isLeader(): boolean;
  /** The controller's token for one node's agent, which that agent alone accepts. */
  agentToken(node: string): Promise<string>;
  nodes: Pick<Informer<V1Node>, 'get'>;
  agentPort: number;
  agentTrust?: TrustBundle | undefined;
  agentCommonName?: ((node: string) => string) | undefined;
}

/** The controller's client of the agents' file API. */
export function agentFilesClient(ctx: Omit<CaptureFileApiContext, 'api' | 'reviewer' | 'isLeader'>): AgentFilesClient {
  return new AgentFilesClient({ token: (node) => ctx.agentToken(node), nodes: ctx.nodes, port: ctx.agentPort, trust: ctx.agentTrust, expectedCommonName: ctx.agentCommonName });
}

export function registerCaptureFileApi(ctx: CaptureFileApiContext, captures: Pick<Informer<PacketCapture>, 'get'>, client?: AgentFilesClient): AgentFilesClient | undefined {
  if (!ctx.api) return undefined;
  const agents = client ?? agentFilesClient(ctx);
  ctx.api.route('GET', DOWNLOAD_ROUTE, async (req, res, params) => {
    const capture = await authorizedCapture(ctx, captures, req, params, 'get');
    const merge = mergeRequested(req);
    // pcap files have no per-packet interface: merged, no reader could tell the pods apart.
    if (merge && capture.spec.format !== 'pcapng') {
      throw new HttpError(400, `?${MERGE_PARAM}=true needs spec.format: pcapng (packetcapture ${capture.metadata.namespace}/${capture.metadata.name} writes ${capture.spec.format ?? 'pcap'}, whose packets cannot say which pod they belong to); download without it for one pcap file per pod`);
    }
    await sendZip(agents, capture, res, merge);
  });
  ctx.api.route('DELETE', DELETE_FILES_ROUTE, async (req, res, params) => {
    const capture = await authorizedCapture(ctx, captures, req, params, 'delete');
    await deleteFiles(agents, capture, res);
  });
  return agents;
}

/** 400 malformed name, 401/403 from the reviewers, 503 on a standby, 404 unknown capture. */
async function authorizedCapture(
  ctx: CaptureFileApiContext,
  captures: Pick<Informer<PacketCapture>, 'get'>,
  req: IncomingMessage,
  params: Record<string, string>,
  verb: CaptureFilesVerb,
): Promise<PacketCapture> {
  const namespace = params.namespace ?? '';
  const name = params.name ?? '';
  checkObjectName('namespace', namespace);
  checkObjectName('name', name);
  await ctx.reviewer.check(req, { ...CAPTURE_FILES_ACCESS, verb, namespace, name });
  // Only the leader's caches are filled; a standby cannot know the capture's nodes.
  if (!ctx.isLeader()) throw new HttpError(503, 'this controller replica is not leading (a standby, or still starting); retry shortly');
  const capture = captures.get(name, namespace);
  if (!capture) throw new HttpError(404, `packetcapture ${namespace}/${name} not found`);
  return capture;
}

async function listAll(agents: AgentFilesClient, capture: PacketCapture): Promise<{ listings: CaptureFileListing[]; missing: AgentError[] }> {
  const { namespace = '', name = '', uid } = capture.metadata;
  const nodes = nodesWithFiles(capture);
  const results = await Promise.allSettled(nodes.map((node) => agents.list(node, namespace, name, uid)));
  const listings: CaptureFileListing[] = [];
  const missing: AgentError[] = [];
  results.forEach((r, i) => {
    if (r.status === 'fulfilled') listings.push(r.value);
    else missing.push(r.reason instanceof AgentError ? r.reason : new AgentError(nodes[i] ?? '?', errorMessage(r.reason)));
  });
  return { listings, missing };
}

/** FIFO slots: a stream takes one when jszip first reads it, gives it back when done. */
class Slots {
  private free: number;
  private readonly waiting: Array<() => void> = [];
  constructor(size: number) {
    this.free = size;
  }
  async take(): Promise<void> {
    if (this.free > 0) {
      this.free -= 1;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }
  give(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free += 1;
  }
}

/** ?merge=true (or 1); anything else but false/0/empty is a 400. */
function mergeRequested(req: IncomingMessage): boolean {
  const value = new URL(req.url ?? '/', 'https://controller.invalid').searchParams.get(MERGE_PARAM);
  if (value === null || value === '' || value === 'false' || value === '0') return false;
  if (value === 'true' || value === '1') return true;
  throw new HttpError(400, `?${MERGE_PARAM}= takes true or false, not ${JSON.stringify(value)}`);
}

/** A Readable that fetches one agent file (or starts one merge) only when jszip starts reading it. */
function lazyAgentFile(open: () => Promise<Readable>, slots: Slots): Readable {
  let source: Readable | undefined;
  let started = false;
  let released = false;
  const release = () => {
    if (!released) {
      released = true;
      slots.give();
    }
  };
  const stream: Readable = new Readable({
    read() {
      if (source) {
        source.resume();
        return;
      }
      if (started) return;
      started = true;
      void (async () => {
        await slots.take();
        source = await open();
        source.on('data', (chunk: Buffer) => {
          if (!stream.push(chunk)) source?.pause();
        });
        source.once('end', () => {
          release();
          stream.push(null);
        });
        source.once('error', (err) => stream.destroy(err));
        source.once('aborted', () => stream.destroy(new Error('the agent closed the connection mid-file')));
      })().catch((err: unknown) => stream.destroy(err instanceof Error ? err : new Error(String(err))));
    },
    destroy(err, callback) {
      source?.destroy();
      release();
      callback(err);
    },
  });
  return stream;
}

/** A pcapng file's pod interface: its files, in sequence order, are one merge input. */
function pcapngInputs(listing: CaptureFileListing): Map<string, CaptureFile[]> {
  const groups = new Map<string, CaptureFile[]>();
  for (const file of listing.files) {
    const parts = pcapFileNameParts(file.fileName);
    if (parts?.format !== 'pcapng') continue;
    const key = `${parts.pod}_${parts.iface}`;
    groups.set(key, [...(groups.get(key) ?? []), file]);
  }
  for (const files of groups.values()) files.sort((a, b) => pcapFileNameParts(a.fileName)!.sequence - pcapFileNameParts(b.fileName)!.sequence);
  return groups;
}

/**
 * pcap captures: every file as the agent wrote it, under <node>/. pcapng captures: per node one
 * <node>/<node>.pcapng merging its pod files (one interface per pod interface), or with merge one
 * <namespace>-<name>.pcapng merging every node's, both sorted by time and streamed; other files
 * (the metadata snapshot, pcap files from before a format change) as they are.
 */
async function sendZip(agents: AgentFilesClient, capture: PacketCapture, res: ServerResponse, merge: boolean): Promise<void> {
  const { namespace = '', name = '', uid } = capture.metadata;
  const log = loggerFor('capture-download', `${namespace}/${name}`);
  const { listings, missing } = await listAll(agents, capture);
  const zip = new JSZip();
  const slots = new Slots(PARALLEL_FETCHES);
  let expected = 0;
  const sources: Readable[] = [];
  const pcapng = capture.spec.format === 'pcapng';
  const add = (entry: string, open: () => Promise<Readable>) => {
    const stream = lazyAgentFile(open, slots);
    sources.push(stream);
    // jszip's typings only know its own stream type; a Node Readable is what it reads (nodestream input).
    zip.file(entry, stream as unknown as NodeJS.ReadableStream, { binary: true });
  };
  // The agent responses a merge reads: destroyed at once if the download fails, without waiting
  // for the merge (which may be awaiting one of them) to notice.
  const merging = new Set<IncomingMessage>();
  const openForMerge = async (node: string, fileName: string): Promise<IncomingMessage> => {
    const response = await agents.open(node, namespace, name, fileName, uid);
    merging.add(response);
    response.once('close', () => merging.delete(response));
    return response;
  };
  const inputsOf = (listing: CaptureFileListing): MergeInput[] =>
    [...pcapngInputs(listing)].map(([key, files]) => ({
      name: `${listing.node}/${key}`,
      chunks: concatenated(files.map((f) => () => openForMerge(listing.node, f.fileName))),
    }));
  const allInputs: MergeInput[] = [];
  for (const listing of listings) {
    const merged = pcapng ? pcapngInputs(listing) : new Map<string, CaptureFile[]>();
    const inMerge = new Set([...merged.values()].flat().map((f) => f.fileName));
    for (const file of listing.files) {
      expected += file.bytes;
      if (inMerge.has(file.fileName)) continue;
      add(`${listing.node}/${file.fileName}`, () => agents.open(listing.node, namespace, name, file.fileName, uid));
    }
    if (merged.size === 0) continue;
    if (merge) allInputs.push(...inputsOf(listing));
    else {
      const inputs = inputsOf(listing);
      add(`${listing.node}/${nodeFileName(listing.node)}`, async () => Readable.from(mergePcapng(inputs), { objectMode: false }));
    }
  }
  if (allInputs.length > 0) add(mergedFileName(namespace, name), async () => Readable.from(mergePcapng(allInputs), { objectMode: false }));
  if (missing.length) zip.file(MISSING_NODES_FILE, `${missing.map((m) => m.message).join('\n')}\n`);
  for (const m of missing) log.warn('node left out of the download', { node: m.node, error: m.message });

  res.writeHead(200, {
    'content-type': 'application/zip',
    'content-disposition': `attachment; filename="${namespace}-${name}.zip"`,
    [EXPECTED_BYTES_HEADER]: String(expected),
    ...(missing.length ? { [MISSING_NODES_HEADER]: missing.map((m) => m.node).join(',') } : {}),
  });
  const out = zip.generateNodeStream({ streamFiles: true, compression: 'STORE' }) as unknown as Readable;
  let sent = 0;
  out.on('data', (chunk: Buffer) => {
    sent += chunk.length;
    captureDownloadBytes.inc(chunk.length);
  });
  try {
    await pipeUntilDone(out, res);
    captureDownloads.inc({ result: missing.length ? 'partial' : 'ok' });
    log.info('capture downloaded', { bytes: sent, nodes: listings.length, merge, missingNodes: missing.map((m) => m.node) });
  } catch (err) {
    captureDownloads.inc({ result: 'failed' });
    for (const source of sources) source.destroy();
    for (const response of merging) response.destroy();
    throw err; // headers are out: the server cuts the connection so the client sees an incomplete zip
  }
}

/** Pipes the zip into the response with backpressure; rejects if either side fails. */
function pipeUntilDone(zip: Readable, res: ServerResponse): Promise<void> {
  return new Promise((resolve, reject) => {
    zip.on('error', reject);
    res.on('error', reject);
    res.on('close', () => (res.writableFinished ? resolve() : reject(new Error('the client went away mid-download'))));
    zip.pipe(res);
  });
}

async function deleteFiles(agents: AgentFilesClient, capture: PacketCapture, res: ServerResponse): Promise<void> {
  const { namespace = '', name = '' } = capture.metadata;
  const ended = captureEnded(capture);
  if (!ended.ended) throw new HttpError(409, `packetcapture ${namespace}/${name} is still running (phase ${capture.status?.phase ?? 'unknown'}): ${ended.reason}`);
  const nodes = nodesWithFiles(capture);
  const results = await Promise.allSettled(nodes.map((node) => agents.remove(node, namespace, name, capture.metadata.uid)));
  const failed = results.flatMap((r) => (r.status === 'rejected' ? [errorMessage(r.reason)] : []));
  loggerFor('capture-download', `${namespace}/${name}`).info('capture files deleted', { nodes, failed });
  if (failed.length) throw new HttpError(502, `files removed on ${nodes.length - failed.length} of ${nodes.length} node(s); ${failed.join('; ')}`);
  sendJson(res, 200, { status: 'Success', message: `files of packetcapture ${namespace}/${name} removed on ${nodes.length} node(s)`, nodes });
}

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
  MISSING_NODES_HEADER,
  type CaptureFileListing,
  type CaptureFilesVerb,
} from '../../apis/capturefiles.js';
import type { PacketCapture } from '../../apis/packetcapture.js';
import type { AccessReviewer } from '../../runtime/auth.js';
import { HttpError, checkObjectName, sendJson, type HttpsApiServer } from '../../runtime/https.js';
import type { Informer } from '../../runtime/informer.js';
import type { TrustBundle } from '../../runtime/tls.js';
import { errorMessage, loggerFor } from '../../util/log.js';
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
    await sendZip(agents, capture, res);
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

/** A Readable that fetches one agent file only when jszip starts reading it. */
function lazyAgentFile(open: () => Promise<IncomingMessage>, slots: Slots): Readable {
  let source: IncomingMessage | undefined;
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

async function sendZip(agents: AgentFilesClient, capture: PacketCapture, res: ServerResponse): Promise<void> {
  const { namespace = '', name = '', uid } = capture.metadata;
  const log = loggerFor('capture-download', `${namespace}/${name}`);
  const { listings, missing } = await listAll(agents, capture);
  const zip = new JSZip();
  const slots = new Slots(PARALLEL_FETCHES);
  let expected = 0;
  const sources: Readable[] = [];
  for (const listing of listings) {
    for (const file of listing.files) {
      expected += file.bytes;
      const stream = lazyAgentFile(() => agents.open(listing.node, namespace, name, file.fileName, uid), slots);
      sources.push(stream);
      // jszip's typings only know its own stream type; a Node Readable is what it reads (nodestream input).
      zip.file(`${listing.node}/${file.fileName}`, stream as unknown as NodeJS.ReadableStream, { binary: true });
    }
  }
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
    log.info('capture downloaded', { bytes: sent, nodes: listings.length, missingNodes: missing.map((m) => m.node) });
  } catch (err) {
    captureDownloads.inc({ result: 'failed' });
    for (const source of sources) source.destroy();
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

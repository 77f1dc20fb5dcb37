// The agent's side of the capture file API (src/apis/capturefiles.ts), for the controller only: it
// alone may get/delete packetcaptures/files, checked by TokenReview + SubjectAccessReview on every
// request. Only the files of the capture this agent knows by that name (its UID) are served.
import { createReadStream, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { AGENT_FILE_ROUTE, AGENT_FILES_ROUTE, CAPTURE_FILES_ACCESS, CAPTURE_UID_PARAM, isCaptureFileName, type CaptureFileListing, type CaptureFilesVerb } from '../../apis/capturefiles.js';
import type { AccessReviewer } from '../../runtime/auth.js';
import { checkObjectName, HttpError, sendJson, type HttpsApiServer } from '../../runtime/https.js';
import type { CaptureAgentReconciler } from './reconciler.js';
import { isCaptureUid, listStoredFiles, type CaptureRef } from './store.js';

export function registerCaptureFileRoutes(
  api: HttpsApiServer,
  reviewer: Pick<AccessReviewer, 'check'>,
  nodeName: string,
  captures: Pick<CaptureAgentReconciler, 'current' | 'discardFiles'>,
): void {
  const authorize = async (req: IncomingMessage, params: Record<string, string>, verb: CaptureFilesVerb): Promise<CaptureRef> => {
    const namespace = params.namespace ?? '';
    const name = params.name ?? '';
    checkObjectName('namespace', namespace);
    checkObjectName('name', name);
    await reviewer.check(req, { ...CAPTURE_FILES_ACCESS, verb, namespace, name });
    return { namespace, name };
  };

  /** The files of the capture this agent knows by that name, and only if it has the UID asked for. */
  const currentFiles = (req: IncomingMessage, ref: CaptureRef) => {
    const uid = requestedUid(req);
    const current = captures.current(ref, uid);
    if (!current) throw new HttpError(404, `no packetcapture ${ref.namespace}/${ref.name}${uid ? ` with uid ${uid}` : ''} on node ${nodeName}`);
    return current;
  };

  api.route('GET', AGENT_FILES_ROUTE, async (req, res, params) => {
    const ref = await authorize(req, params, 'get');
    const current = currentFiles(req, ref);
    current.session?.flush();
    const writing = current.session?.filesBeingWritten() ?? new Set<string>();
    const files = listStoredFiles(current.dir).map((f) => ({ pod: f.pod, fileName: f.fileName, bytes: f.bytes, complete: !writing.has(f.fileName) }));
    sendJson(res, 200, { node: nodeName, files } satisfies CaptureFileListing);
  });

  api.route('GET', AGENT_FILE_ROUTE, async (req, res, params) => {
    const fileName = params.fileName ?? '';
    // Checked before anything touches the disk; authorization first would tell strangers nothing more.
    const ref = await authorize(req, params, 'get');
    if (!isCaptureFileName(fileName)) throw new HttpError(400, `${JSON.stringify(fileName)} is not a capture file name`);
    const current = currentFiles(req, ref);
    current.session?.flush();
    await sendFile(res, path.join(current.dir, fileName), fileName);
  });

  api.route('DELETE', AGENT_FILES_ROUTE, async (req, res, params) => {
    const ref = await authorize(req, params, 'delete');
    currentFiles(req, ref);
    captures.discardFiles(ref);
    res.writeHead(204).end();
  });
}

/** The ?uid= the controller sends: the capture it means, so a newer one of the same name is not served instead. */
function requestedUid(req: IncomingMessage): string | undefined {
  const uid = new URL(req.url ?? '/', 'https://agent.invalid').searchParams.get(CAPTURE_UID_PARAM) ?? undefined;
  if (uid !== undefined && !isCaptureUid(uid)) throw new HttpError(400, `${JSON.stringify(uid)} is not a capture uid`);
  return uid;
}

/** Streams the file as it is now: its size at open is the content-length (a file being written
 * only grows, and always by whole records). */
async function sendFile(res: ServerResponse, file: string, fileName: string): Promise<void> {
  let size: number;
  try {
    size = statSync(file).size;
  } catch {
    throw new HttpError(404, `no capture file ${fileName}`);
  }
  const stream = createReadStream(file, { start: 0, end: Math.max(0, size - 1) });
  await new Promise<void>((resolve, reject) => {
    stream.once('open', () => resolve());
    stream.once('error', reject);
  }).catch(() => {
    throw new HttpError(404, `no capture file ${fileName}`);
  });
  res.writeHead(200, {
    'content-type': fileName.endsWith('.pcap') ? 'application/vnd.tcpdump.pcap' : fileName.endsWith('.pcapng') ? 'application/x-pcapng' : 'text/plain; charset=utf-8',
    'content-length': size,
    'content-disposition': `attachment; filename="${fileName}"`,
  });
  if (size === 0) {
    stream.destroy();
    res.end();
    return;
  }
  await pipeline(stream, res);
}

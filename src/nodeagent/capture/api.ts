// The agent's side of the capture file API (src/apis/capturefiles.ts), for the controller only: it
// alone may get/delete packetcaptures/files, checked by TokenReview + SubjectAccessReview on every
// request.
import { createReadStream, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { AGENT_FILE_ROUTE, AGENT_FILES_ROUTE, CAPTURE_FILES_ACCESS, isCaptureFileName, type CaptureFileListing, type CaptureFilesVerb } from '../../apis/capturefiles.js';
import type { AccessReviewer } from '../../runtime/auth.js';
import { checkObjectName, HttpError, sendJson, type HttpsApiServer } from '../../runtime/https.js';
import type { CaptureAgentReconciler } from './reconciler.js';
import { captureDirectory, listStoredFiles, type CaptureRef } from './store.js';

export function registerCaptureFileRoutes(
  api: HttpsApiServer,
  reviewer: Pick<AccessReviewer, 'check'>,
  stateDir: string,
  nodeName: string,
  captures: Pick<CaptureAgentReconciler, 'session' | 'discardFiles'>,
): void {
  const authorize = async (req: IncomingMessage, params: Record<string, string>, verb: CaptureFilesVerb): Promise<CaptureRef> => {
    const namespace = params.namespace ?? '';
    const name = params.name ?? '';
    checkObjectName('namespace', namespace);
    checkObjectName('name', name);
    await reviewer.check(req, { ...CAPTURE_FILES_ACCESS, verb, namespace, name });
    return { namespace, name };
  };

  api.route('GET', AGENT_FILES_ROUTE, async (req, res, params) => {
    const ref = await authorize(req, params, 'get');
    sendJson(res, 200, listing(ref));
  });

  api.route('GET', AGENT_FILE_ROUTE, async (req, res, params) => {
    const fileName = params.fileName ?? '';
    // Checked before anything touches the disk; authorization first would tell strangers nothing more.
    const ref = await authorize(req, params, 'get');
    if (!isCaptureFileName(fileName)) throw new HttpError(400, `${JSON.stringify(fileName)} is not a capture file name`);
    captures.session(ref)?.flush();
    await sendFile(res, path.join(captureDirectory(stateDir, ref), fileName), fileName);
  });

  api.route('DELETE', AGENT_FILES_ROUTE, async (req, res, params) => {
    const ref = await authorize(req, params, 'delete');
    captures.discardFiles(ref);
    res.writeHead(204).end();
  });

  function listing(ref: CaptureRef): CaptureFileListing {
    const session = captures.session(ref);
    session?.flush();
    const writing = session?.filesBeingWritten() ?? new Set<string>();
    const files = listStoredFiles(captureDirectory(stateDir, ref)).map((f) => ({ pod: f.pod, fileName: f.fileName, bytes: f.bytes, complete: !writing.has(f.fileName) }));
    return { node: nodeName, files };
  }
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
    'content-type': fileName.endsWith('.pcap') ? 'application/vnd.tcpdump.pcap' : 'text/plain; charset=utf-8',
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

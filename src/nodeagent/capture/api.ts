// The agent's capture-file endpoints, for the controller only (it alone may get/delete
// packetcaptures/files, checked by TokenReview + SubjectAccessReview on every request):
//   GET    /captures/:namespace/:name/files            -> { node, files: [{ pod, fileName, bytes, complete }] }
//   GET    /captures/:namespace/:name/files/:fileName  -> the file (pcap, or the metadata text)
//   DELETE /captures/:namespace/:name/files            -> 204 once stopped here and removed
import { createReadStream, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { AccessReviewer } from '../../controllers/auth.js';
import { checkObjectName, HttpError, sendJson, type HttpsApiServer } from '../../controllers/https.js';
import type { CaptureAgentReconciler } from './reconciler.js';
import { captureDirectory, isCaptureFileName, listStoredFiles, type CaptureRef } from './store.js';

export interface CaptureFileListing {
  node: string;
  files: Array<{ pod: string; fileName: string; bytes: number; complete: boolean }>;
}

export function registerCaptureFileRoutes(api: HttpsApiServer, reviewer: AccessReviewer, stateDir: string, nodeName: string, captures: CaptureAgentReconciler): void {
  const authorize = async (req: IncomingMessage, params: Record<string, string>, verb: 'get' | 'delete'): Promise<CaptureRef> => {
    const namespace = params.namespace ?? '';
    const name = params.name ?? '';
    checkObjectName('namespace', namespace);
    checkObjectName('name', name);
    await reviewer.check(req, { verb, group: 'netwarden.io', resource: 'packetcaptures', subresource: 'files', namespace, name });
    return { namespace, name };
  };

  api.route('GET', '/captures/:namespace/:name/files', async (req, res, params) => {
    const ref = await authorize(req, params, 'get');
    sendJson(res, 200, listing(ref));
  });

  api.route('GET', '/captures/:namespace/:name/files/:fileName', async (req, res, params) => {
    const fileName = params.fileName ?? '';
    // Checked before anything touches the disk; authorization first would tell strangers nothing more.
    const ref = await authorize(req, params, 'get');
    if (!isCaptureFileName(fileName)) throw new HttpError(400, `${JSON.stringify(fileName)} is not a capture file name`);
    captures.session(ref)?.flush();
    await sendFile(res, path.join(captureDirectory(stateDir, ref), fileName), fileName);
  });

  api.route('DELETE', '/captures/:namespace/:name/files', async (req, res, params) => {
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

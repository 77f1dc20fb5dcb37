// The request body of one POST to the controller's intake: the JSON of a DropBatch, written from
// the drops the send queue already holds as JSON. The bytes are those JSON.stringify(batch) gives
// (same key order as DropBatch), without parsing the drops back into objects first.
import type { DropBatch } from '../../apis/drops.js';

/** Everything of a DropBatch but its drops. */
export type DropBatchHeader = Omit<DropBatch, 'drops'>;

const COMMA = 0x2c;

export function encodeDropBatch(header: DropBatchHeader, drops: readonly Buffer[]): Buffer {
  const head = Buffer.from(`{"node":${JSON.stringify(header.node)},"sequence":${JSON.stringify(header.sequence)},"sentAt":${JSON.stringify(header.sentAt)},"drops":[`);
  const tail = Buffer.from(`],"shedSinceLastBatch":${JSON.stringify(header.shedSinceLastBatch)}}`);
  let size = head.length + tail.length + Math.max(0, drops.length - 1);
  for (const json of drops) size += json.length;
  const body = Buffer.allocUnsafe(size);
  let at = head.copy(body, 0);
  for (let i = 0; i < drops.length; i++) {
    if (i > 0) body[at++] = COMMA;
    at += drops[i]!.copy(body, at);
  }
  tail.copy(body, at);
  return body;
}

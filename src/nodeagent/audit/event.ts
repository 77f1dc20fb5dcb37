// One audit log line: either an audit.k8s.io/v1 Event (kept as its original bytes, so what the
// receiver gets is exactly what the kube-apiserver wrote) or a quarantined line.
//
// Quarantine form. A line that is not an audit event (not JSON, cut short, longer than the line
// limit, without its trailing newline at the end of a rotated file) is never dropped:
//  - ndjson, s3 and file sinks get a JSON object in its place:
//      {"kind":"NetwardenQuarantinedLine","apiVersion":"netwarden.io/v1alpha1","file":...,
//       "offset":...,"length":...,"reason":...,"line":"<text>"}
//    with "encoding":"base64" when the bytes are not valid UTF-8 (so nothing is lost), and
//    "truncated":true when `line` holds only the first bytes of an oversize line.
//  - eventList webhooks get an audit.k8s.io/v1 Event in its place, so the batch stays a valid
//    EventList that any webhook receiver accepts unchanged. Its auditID is derived from the file
//    and offset (stable across re-sends), and its annotations carry the line and where it was:
//      netwarden.io/quarantined-line, netwarden.io/quarantined-encoding, netwarden.io/file,
//      netwarden.io/offset, netwarden.io/reason, netwarden.io/truncated.
//    Receivers recognise these by the annotation; verb and requestURI are empty.
import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';

/** The fields the filter looks at. */
export interface AuditEventFields {
  stage: string;
  verb: string;
  username: string;
  groups: readonly string[];
  /** Absent for non-resource requests (/healthz, /version, ...). */
  objectRef?: { apiGroup: string; resource: string; subresource: string; namespace: string };
}

export type ParsedLine = { ok: true; fields: AuditEventFields } | { ok: false; reason: string };

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

/**
 * A line of kube-apiserver's --audit-log-format=legacy, e.g.
 * `2017-03-21T03:57:09.106841886-04:00 AUDIT: id="c939d2a7-..." stage="RequestReceived" ip="127.0.0.1" method="update" ...`
 */
const LEGACY_LINE = /^\S+ AUDIT: id="/;
const LEGACY_REASON = 'legacy text format: start kube-apiserver with --audit-log-format=json (the default) to forward events';

/** Parses one line; an audit Event has at least level, auditID and stage as strings. */
export function parseAuditLine(line: Buffer): ParsedLine {
  let doc: unknown;
  try {
    doc = JSON.parse(line.toString('utf8'));
  } catch (err) {
    if (LEGACY_LINE.test(line.toString('latin1', 0, 96))) return { ok: false, reason: LEGACY_REASON };
    return { ok: false, reason: `invalid JSON: ${(err as Error).message}` };
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return { ok: false, reason: 'not a JSON object' };
  const ev = doc as Record<string, unknown>;
  if (typeof ev.auditID !== 'string' || typeof ev.stage !== 'string' || typeof ev.level !== 'string') {
    return { ok: false, reason: 'not an audit event (level, auditID and stage are required)' };
  }
  const user = (typeof ev.user === 'object' && ev.user !== null ? ev.user : {}) as Record<string, unknown>;
  const groups = Array.isArray(user.groups) ? user.groups.filter((g): g is string => typeof g === 'string') : [];
  const fields: AuditEventFields = { stage: ev.stage, verb: str(ev.verb), username: str(user.username), groups };
  if (typeof ev.objectRef === 'object' && ev.objectRef !== null) {
    const ref = ev.objectRef as Record<string, unknown>;
    fields.objectRef = { apiGroup: str(ref.apiGroup), resource: str(ref.resource), subresource: str(ref.subresource), namespace: str(ref.namespace) };
  }
  return { ok: true, fields };
}

/** A line that could not be forwarded as an event, and where it was. */
export interface QuarantinedLine {
  file: string;
  offset: number;
  /** Real length of the line in bytes. */
  length: number;
  reason: string;
  /** The bytes we have of it (the first maxLineBytes of an oversize line). */
  line: Buffer;
  truncated: boolean;
}

function lineText(line: Buffer): { text: string; encoding: 'utf8' | 'base64' } {
  return isUtf8(line) ? { text: line.toString('utf8'), encoding: 'utf8' } : { text: line.toString('base64'), encoding: 'base64' };
}

/** The quarantine object of the ndjson, s3 and file sinks. */
export function quarantineObject(q: QuarantinedLine): Buffer {
  const { text, encoding } = lineText(q.line);
  const obj: Record<string, unknown> = {
    kind: 'NetwardenQuarantinedLine',
    apiVersion: 'netwarden.io/v1alpha1',
    file: q.file,
    offset: q.offset,
    length: q.length,
    reason: q.reason,
    line: text,
  };
  if (encoding === 'base64') obj.encoding = 'base64';
  if (q.truncated) obj.truncated = true;
  return Buffer.from(JSON.stringify(obj));
}

/** A UUID (version 5 layout) derived from the line's place, so a re-sent quarantine keeps its ID. */
function stableAuditID(q: QuarantinedLine): string {
  const h = createHash('sha1').update(`${q.file}\0${q.offset}\0${q.length}`).digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

/** The quarantine Event of the eventList format (see the header comment). */
export function quarantineEvent(q: QuarantinedLine, now: Date): Buffer {
  const { text, encoding } = lineText(q.line);
  const time = now.toISOString().replace('Z', '000Z'); // metav1.MicroTime
  const annotations: Record<string, string> = {
    'netwarden.io/quarantined-line': text,
    'netwarden.io/quarantined-encoding': encoding,
    'netwarden.io/file': q.file,
    'netwarden.io/offset': String(q.offset),
    'netwarden.io/length': String(q.length),
    'netwarden.io/reason': q.reason,
  };
  if (q.truncated) annotations['netwarden.io/truncated'] = 'true';
  return Buffer.from(JSON.stringify({
    kind: 'Event',
    apiVersion: 'audit.k8s.io/v1',
    level: 'Metadata',
    auditID: stableAuditID(q),
    stage: 'ResponseComplete',
    requestURI: '',
    verb: '',
    user: {},
    requestReceivedTimestamp: time,
    stageTimestamp: time,
    annotations,
  }));
}

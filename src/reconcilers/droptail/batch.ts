// Checks a drop batch (src/apis/drops.ts) before anything of it is used: a batch is taken whole or
// refused whole with the first reason found, named by its JSON path so the agent's log says which
// entry was wrong. Addresses are normalised here, once.
import { DROP_REASON_PATTERN, DROP_SOURCE_TYPES, MAX_DROPS_PER_BATCH, type AggregatedDrop, type DropBatch, type DropSourceType, type PacketDrop } from '../../apis/drops.js';
import { normalizeIP } from '../../util/ip.js';

export class BatchError extends Error {}

const SOURCES = DROP_SOURCE_TYPES;
const NODE_NAME = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

type Json = Record<string, unknown>;

/** Parses and checks a request body; throws BatchError with the reason. */
export function parseDropBatch(body: Buffer | string): DropBatch {
  let value: unknown;
  try {
    value = JSON.parse(typeof body === 'string' ? body : body.toString('utf8'));
  } catch (err) {
    throw new BatchError(`body is not JSON: ${(err as Error).message}`);
  }
  const batch = object(value, '$');
  const node = string(batch.node, '$.node', 253);
  if (!NODE_NAME.test(node)) throw new BatchError(`$.node: ${JSON.stringify(node)} is not a node name`);
  if (!Array.isArray(batch.drops)) throw new BatchError('$.drops: must be an array');
  if (batch.drops.length > MAX_DROPS_PER_BATCH) throw new BatchError(`$.drops: ${batch.drops.length} entries, at most ${MAX_DROPS_PER_BATCH} per batch`);
  return {
    node,
    sequence: integer(batch.sequence, '$.sequence', 0),
    sentAt: time(batch.sentAt, '$.sentAt'),
    drops: batch.drops.map((d, i) => aggregatedDrop(d, `$.drops[${i}]`)),
    shedSinceLastBatch: integer(batch.shedSinceLastBatch, '$.shedSinceLastBatch', 0),
  };
}

function aggregatedDrop(value: unknown, path: string): AggregatedDrop {
  const entry = object(value, path);
  const firstSeen = time(entry.firstSeen, `${path}.firstSeen`);
  const lastSeen = time(entry.lastSeen, `${path}.lastSeen`);
  if (Date.parse(lastSeen) < Date.parse(firstSeen)) throw new BatchError(`${path}: lastSeen ${lastSeen} is before firstSeen ${firstSeen}`);
  const source = entry.source;
  if (!SOURCES.includes(source as DropSourceType)) throw new BatchError(`${path}.source: must be one of ${SOURCES.join(', ')}`);
  return { drop: packetDrop(entry.drop, `${path}.drop`), count: integer(entry.count, `${path}.count`, 1), firstSeen, lastSeen, source: source as DropSourceType };
}

/** The fields the controller reads are checked; the rest of the parser's output is kept as sent. */
function packetDrop(value: unknown, path: string): PacketDrop {
  const drop = object(value, path);
  const family = drop.family;
  if (family !== 'ipv4' && family !== 'ipv6') throw new BatchError(`${path}.family: must be ipv4 or ipv6`);
  const checked: Json = {
    ...drop,
    time: time(drop.time, `${path}.time`),
    prefix: string(drop.prefix, `${path}.prefix`, 256, true),
    src: address(drop.src, `${path}.src`),
    dst: address(drop.dst, `${path}.dst`),
    protocol: string(drop.protocol, `${path}.protocol`, 16),
  };
  for (const field of ['srcPort', 'dstPort'] as const) if (drop[field] !== undefined) checked[field] = integer(drop[field], `${path}.${field}`, 0, 65535);
  for (const field of ['icmpType', 'icmpCode'] as const) if (drop[field] !== undefined) checked[field] = integer(drop[field], `${path}.${field}`, 0, 255);
  for (const field of ['inInterface', 'outInterface'] as const) if (drop[field] !== undefined) checked[field] = string(drop[field], `${path}.${field}`, 64, true);
  // A label value of the drop metrics and a word of the Event: the kernel's names only.
  if (drop.reason !== undefined) {
    const reason = string(drop.reason, `${path}.reason`, 64);
    if (!DROP_REASON_PATTERN.test(reason)) throw new BatchError(`${path}.reason: ${JSON.stringify(reason)} is not a kernel drop reason name`);
    checked.reason = reason;
  }
  return checked as unknown as PacketDrop;
}

function object(value: unknown, path: string): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new BatchError(`${path}: must be an object`);
  return value as Json;
}

function string(value: unknown, path: string, maxLength: number, allowEmpty = false): string {
  if (typeof value !== 'string') throw new BatchError(`${path}: must be a string`);
  if (!allowEmpty && value.length === 0) throw new BatchError(`${path}: must not be empty`);
  if (value.length > maxLength) throw new BatchError(`${path}: longer than ${maxLength} characters`);
  return value;
}

function integer(value: unknown, path: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) throw new BatchError(`${path}: must be an integer from ${min} to ${max}`);
  return value;
}

function time(value: unknown, path: string): string {
  const text = string(value, path, 64);
  if (!ISO_TIME.test(text) || Number.isNaN(Date.parse(text))) throw new BatchError(`${path}: ${JSON.stringify(text)} is not an RFC 3339 time`);
  return text;
}

function address(value: unknown, path: string): string {
  const text = string(value, path, 64);
  const ip = normalizeIP(text);
  if (!ip) throw new BatchError(`${path}: ${JSON.stringify(text)} is not an IP address`);
  return ip;
}

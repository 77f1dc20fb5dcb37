// `netwarden validate -f FILE_OR_DIR ...`: check Netwarden manifests offline, with the same schemas
// and CEL rules the API server enforces, and the capture quota ConfigMap as the controller reads
// it. Objects of other kinds are passed over, so a whole manifests directory can be checked at once.

import { readdir, readFile, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { CAPTURE_QUOTA_CONFIGMAP, parseQuotaConfig } from '../apis/capturequota.js';
import { isNetwardenObject, validateObject } from '../apis/index.js';
import { escapeForTerminal } from '../util/terminal.js';

/** One output line; manifests' names, paths and values are shown escaped for the terminal. */
function writeLine(out: NodeJS.WritableStream, text: string): void {
  out.write(`${escapeForTerminal(text)}\n`);
}

const MANIFEST_EXTENSIONS = new Set(['.yaml', '.yml', '.json']);

interface Tally {
  files: number;
  validated: number;
  passedOver: number;
  errors: number;
}

/** The files a -f argument names: the file itself, or a directory's manifests, recursively and sorted. */
async function manifestFiles(path: string): Promise<string[]> {
  if (!(await stat(path)).isDirectory()) return [path];
  const entries = (await readdir(path, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name));
  const files: string[] = [];
  for (const entry of entries) {
    const child = join(path, entry.name);
    if (entry.isDirectory()) files.push(...(await manifestFiles(child)));
    else if (MANIFEST_EXTENSIONS.has(extname(entry.name).toLowerCase())) files.push(child);
  }
  return files;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** KIND/NAME of an object for error lines, with placeholders for what is missing. */
function objectLabel(obj: Record<string, unknown>): string {
  const kind = typeof obj.kind === 'string' && obj.kind !== '' ? obj.kind : '<no kind>';
  const meta = isRecord(obj.metadata) ? obj.metadata : {};
  const name = typeof meta.name === 'string' && meta.name !== '' ? meta.name : typeof meta.generateName === 'string' ? `${meta.generateName}*` : '<no name>';
  return `${kind}/${name}`;
}

/** A v1 List (what `kubectl get -o yaml` writes) stands for its items. */
function objectsOf(value: Record<string, unknown>): Record<string, unknown>[] {
  if (typeof value.kind === 'string' && value.kind.endsWith('List') && Array.isArray(value.items)) return value.items.filter(isRecord);
  return [value];
}

/** The capture quota ConfigMap (the admin's): parsed as the controller parses it. */
function isQuotaConfigMap(obj: Record<string, unknown>): boolean {
  return obj.apiVersion === 'v1' && obj.kind === 'ConfigMap' && isRecord(obj.metadata) && obj.metadata.name === CAPTURE_QUOTA_CONFIGMAP;
}

function checkObject(obj: Record<string, unknown>, where: string, out: NodeJS.WritableStream, tally: Tally): void {
  if (isQuotaConfigMap(obj)) {
    tally.validated++;
    const data = isRecord(obj.data) ? (obj.data as Record<string, string>) : {};
    const error = parseQuotaConfig({ data, metadata: obj.metadata as { name: string; namespace?: string } }).error;
    if (error) {
      // The controller would fall back to the built-in quotas: say so, as it logs it.
      writeLine(out, `${where}: ${objectLabel(obj)}: ${error} (the controller would use the built-in quotas instead)`);
      tally.errors++;
    }
    return;
  }
  if (!isNetwardenObject(obj)) {
    tally.passedOver++;
    return;
  }
  tally.validated++;
  for (const e of validateObject(obj, { admissionPolicies: true })) {
    writeLine(out, `${where}: ${objectLabel(obj)}: ${e.path || '<object>'}: ${e.message}`);
    tally.errors++;
  }
}

/** Validate every document of one file, writing one line per problem. */
async function checkFile(file: string, out: NodeJS.WritableStream, tally: Tally): Promise<void> {
  tally.files++;
  const docs = parseAllDocuments(await readFile(file, 'utf8'));
  // parseAllDocuments returns an EmptyStream (not an array) for a file with no documents.
  if (!Array.isArray(docs)) return;
  docs.forEach((doc, i) => {
    const where = `${file}:doc ${i + 1}`;
    if (doc.errors.length > 0) {
      for (const err of doc.errors) {
        writeLine(out, `${where}: YAML: ${err.message.split('\n')[0].replace(/:$/, '')}`);
        tally.errors++;
      }
      return;
    }
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) return; // an empty document, e.g. after a trailing ---
    if (!isRecord(value)) {
      writeLine(out, `${where}: not a Kubernetes object (a ${Array.isArray(value) ? 'list' : typeof value})`);
      tally.errors++;
      return;
    }
    for (const obj of objectsOf(value)) checkObject(obj, where, out, tally);
  });
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/**
 * Validate the manifests under paths, writing `FILE:doc N: KIND/NAME: FIELD: MESSAGE` per problem and
 * a summary line. Returns the exit code: 0 when everything is valid, 1 otherwise, 2 without paths.
 */
export async function runValidate(paths: string[], out: NodeJS.WritableStream): Promise<number> {
  if (paths.length === 0) {
    out.write('netwarden validate: give at least one -f FILE_OR_DIR\n');
    return 2;
  }
  const tally: Tally = { files: 0, validated: 0, passedOver: 0, errors: 0 };
  for (const path of paths) {
    let files: string[];
    try {
      files = await manifestFiles(path);
    } catch (err) {
      writeLine(out, `${path}: ${err instanceof Error && 'code' in err && err.code === 'ENOENT' ? 'no such file or directory' : String(err)}`);
      tally.errors++;
      continue;
    }
    if (files.length === 0) {
      writeLine(out, `${path}: no .yaml, .yml or .json files`);
      tally.errors++;
    }
    for (const file of files) await checkFile(file, out, tally);
  }
  const verdict = tally.errors === 0 ? 'valid' : plural(tally.errors, 'error');
  out.write(`${plural(tally.files, 'file')}, ${plural(tally.validated, 'Netwarden object')} checked (${plural(tally.passedOver, 'other object')} passed over): ${verdict}\n`);
  return tally.errors === 0 ? 0 : 1;
}

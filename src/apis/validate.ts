// Offline validation of Netwarden objects with the very schemas the CRDs are rendered from:
// ajv checks the OpenAPI part (types, bounds, enums, formats, required, unknown fields) and applies
// defaults; a CEL evaluator runs each x-kubernetes-validations rule as the API server would, and
// list-type map/set keys are checked for duplicates. Messages follow the API server's wording.

import { Environment } from '@marcbachmann/cel-js';
import { admissionViolations } from './admission.js';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import ajvFormats from 'ajv-formats';
import { CRD_DEFINITIONS } from './crd.js';
import { API_VERSION, GROUP } from './meta.js';
import type { AuditForwarder, AuditForwarderInput } from './auditforwarder.js';
import type { DropTail, DropTailInput } from './droptail.js';
import type { PacketCapture, PacketCaptureInput } from './packetcapture.js';
import type { CrdDefinition, JSONSchemaProps, ValidationRule } from './schema.js';

/** One problem with an object: the field (e.g. `spec.filters[0].protocol`) and what is wrong. */
export interface ValidationError {
  path: string;
  message: string;
}

export interface ValidationResult {
  /** A copy of the object with the schema defaults applied, as the API server would store it. */
  object: unknown;
  errors: ValidationError[];
}

type Json = Record<string, unknown>;

function isRecord(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// ---- Paths ----

function childPath(path: string, name: string): string {
  return path === '' ? name : `${path}.${name}`;
}

function indexPath(path: string, index: number | string): string {
  return `${path}[${index}]`;
}

/** ajv's JSON pointer (/spec/filters/0) to the Kubernetes field path (spec.filters[0]). */
function pointerToPath(pointer: string): string {
  let path = '';
  for (const raw of pointer.split('/').slice(1)) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    path = /^\d+$/.test(seg) ? indexPath(path, seg) : childPath(path, seg);
  }
  return path;
}

// ---- ajv: the OpenAPI part ----

const KUBERNETES_KEYWORDS = [
  'x-kubernetes-int-or-string',
  'x-kubernetes-preserve-unknown-fields',
  'x-kubernetes-list-type',
  'x-kubernetes-list-map-keys',
  'x-kubernetes-map-type',
  'x-kubernetes-validations',
  'x-kubernetes-embedded-resource',
];

function newAjv(): Ajv {
  // strictTypes off: int-or-string puts minimum and pattern beside an anyOf of types, which is
  // exactly what the API server expects but what ajv's type-strictness warns about.
  const ajv = new Ajv({ allErrors: true, useDefaults: true, verbose: true, strict: true, strictTypes: false });
  ajvFormats.default(ajv, ['date-time', 'uri', 'byte']);
  // Kubernetes' own keywords carry no JSON Schema meaning; registering them lets strict mode pass.
  for (const keyword of KUBERNETES_KEYWORDS) ajv.addKeyword({ keyword });
  // Structural schemas do not name integer formats ajv would otherwise reject as unknown.
  ajv.addFormat('int32', { type: 'number', validate: (n: number) => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 });
  ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isSafeInteger(n) });
  return ajv;
}

/**
 * The schema ajv gets: CRD schemas may not say additionalProperties: false (the API server prunes
 * or, with kubectl's strict field validation, rejects unknown fields), so it is added here.
 */
function toAjvSchema(s: JSONSchemaProps): Json {
  const out: Json = { ...s };
  if (s.properties) {
    out.properties = Object.fromEntries(Object.entries(s.properties).map(([k, v]) => [k, toAjvSchema(v)]));
    if (!s['x-kubernetes-preserve-unknown-fields']) out.additionalProperties = false;
  }
  if (s.additionalProperties) out.additionalProperties = toAjvSchema(s.additionalProperties);
  if (s.items) out.items = toAjvSchema(s.items);
  return out;
}

const ajv = newAjv();
const compiled = new Map<CrdDefinition, ValidateFunction>();

function validatorFor(def: CrdDefinition): ValidateFunction {
  let fn = compiled.get(def);
  if (!fn) {
    fn = ajv.compile(toAjvSchema(def.schema));
    compiled.set(def, fn);
  }
  return fn;
}

function describe(value: unknown): string {
  if (isRecord(value)) return '"object"';
  if (Array.isArray(value)) return '"array"';
  return JSON.stringify(value) ?? 'null';
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

/** One ajv error in the API server's words, or undefined for errors another one already covers. */
function fromAjvError(e: ErrorObject): ValidationError | undefined {
  const path = pointerToPath(e.instancePath);
  const p = e.params as Record<string, unknown>;
  const invalid = `Invalid value: ${describe(e.data)}`;
  // The type errors of int-or-string's two anyOf branches are summed up by the anyOf error.
  if (e.schemaPath.includes('/anyOf/')) return undefined;
  switch (e.keyword) {
    case 'required':
      return { path: childPath(path, String(p.missingProperty)), message: 'Required value' };
    case 'additionalProperties':
      return { path: childPath(path, String(p.additionalProperty)), message: 'unknown field' };
    case 'enum': {
      const allowed = (p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ');
      return { path, message: `Unsupported value: ${describe(e.data)}: supported values: ${allowed}` };
    }
    case 'type':
      return { path, message: `${invalid}: must be of type ${String(p.type)}, not ${typeName(e.data)}` };
    case 'anyOf':
      return { path, message: `${invalid}: must be an integer or a string` };
    case 'pattern':
      return { path, message: `${invalid}: should match '${String(p.pattern)}'` };
    case 'format':
      return { path, message: `${invalid}: must be a valid ${String(p.format)}` };
    case 'minimum':
      return { path, message: `${invalid}: should be greater than or equal to ${String(p.limit)}` };
    case 'maximum':
      return { path, message: `${invalid}: should be less than or equal to ${String(p.limit)}` };
    case 'maxLength':
      return { path, message: `Too long: may not be longer than ${String(p.limit)}` };
    case 'minLength':
      return { path, message: `${invalid}: should be at least ${String(p.limit)} chars long` };
    case 'maxItems':
      return { path, message: `Too many: ${(e.data as unknown[]).length}: must have at most ${String(p.limit)} items` };
    case 'minItems':
      return { path, message: `Too few: ${(e.data as unknown[]).length}: must have at least ${String(p.limit)} items` };
    default:
      return { path, message: e.message ?? e.keyword };
  }
}

// ---- CEL: the x-kubernetes-validations rules ----

const cel = new Environment({ unlistedVariablesAreDyn: true, homogeneousAggregateLiterals: false });
type CompiledRule = (context: Record<string, unknown>) => unknown;
const celCache = new Map<string, CompiledRule>();

function compileRule(rule: string): CompiledRule {
  let fn = celCache.get(rule);
  if (!fn) {
    const parsed = cel.parse(rule);
    fn = (context) => parsed(context) as unknown;
    celCache.set(rule, fn);
  }
  return fn;
}

/**
 * A JSON value as the API server hands it to CEL: integers are CEL ints (BigInt here), date-time
 * strings are timestamps, and fields the schema does not know are pruned away.
 */
function toCel(schema: JSONSchemaProps, value: unknown): unknown {
  if (typeof value === 'number') {
    const intField = schema.type === 'integer' || schema['x-kubernetes-int-or-string'] === true;
    return intField && Number.isInteger(value) ? BigInt(value) : value;
  }
  if (typeof value === 'string' && schema.format === 'date-time') {
    const d = new Date(value);
    return Number.isNaN(d.getTime()) ? value : d;
  }
  if (Array.isArray(value)) return value.map((v) => (schema.items ? toCel(schema.items, v) : v));
  if (isRecord(value)) {
    const out: Json = {};
    for (const [k, v] of Object.entries(value)) {
      const prop = schema.properties?.[k] ?? schema.additionalProperties;
      if (prop) out[k] = toCel(prop, v);
      else if (schema['x-kubernetes-preserve-unknown-fields'] || (!schema.properties && !schema.additionalProperties)) out[k] = v;
    }
    return out;
  }
  return value;
}

/** Transition rules compare with the stored object, which offline validation does not have. */
function usesOldSelf(rule: ValidationRule): boolean {
  return /\boldSelf\b/.test(rule.rule);
}

function checkRule(rule: ValidationRule, self: unknown, path: string): ValidationError | undefined {
  const at = rule.fieldPath ? `${path}${rule.fieldPath}` : path;
  try {
    if (compileRule(rule.rule)({ self }) === true) return undefined;
  } catch (err) {
    return { path: at, message: `rule evaluation error: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}` };
  }
  return { path: at, message: rule.message ?? `failed rule: ${rule.rule}` };
}

// ---- list-type map and set: duplicate keys ----

function listKey(schema: JSONSchemaProps, item: unknown): string {
  const keys = schema['x-kubernetes-list-map-keys'] ?? [];
  if (schema['x-kubernetes-list-type'] === 'map' && isRecord(item)) return JSON.stringify(Object.fromEntries(keys.map((k) => [k, item[k] ?? null])));
  return JSON.stringify(item);
}

function checkListUniqueness(schema: JSONSchemaProps, list: unknown[], path: string): ValidationError[] {
  const listType = schema['x-kubernetes-list-type'];
  if (listType !== 'map' && listType !== 'set') return [];
  const seen = new Set<string>();
  const errors: ValidationError[] = [];
  list.forEach((item, i) => {
    const key = listKey(schema, item);
    if (seen.has(key)) errors.push({ path: indexPath(path, i), message: `Duplicate value: ${key}` });
    seen.add(key);
  });
  return errors;
}

function hasSchemaType(schema: JSONSchemaProps, value: unknown): boolean {
  switch (schema.type) {
    case 'object':
      return isRecord(value);
    case 'array':
      return Array.isArray(value);
    case undefined:
      return value !== null && value !== undefined;
    default:
      return typeName(value) === schema.type || (schema.type === 'number' && typeof value === 'number');
  }
}

/** Walk value and schema together, running the CEL rules and list-key checks of every field. */
function checkKubernetesRules(schema: JSONSchemaProps, value: unknown, path: string, errors: ValidationError[]): void {
  // A value of the wrong type is ajv's to report; rules on it would only add noise.
  if (!hasSchemaType(schema, value)) return;
  const rules = (schema['x-kubernetes-validations'] ?? []).filter((rule) => !usesOldSelf(rule));
  if (rules.length > 0) {
    // One conversion of the (possibly large) value for all of this field's rules.
    const self = toCel(schema, value);
    for (const rule of rules) {
      const error = checkRule(rule, self, path);
      if (error) errors.push(error);
    }
  }
  if (Array.isArray(value)) {
    errors.push(...checkListUniqueness(schema, value, path));
    if (schema.items) value.forEach((v, i) => checkKubernetesRules(schema.items!, v, indexPath(path, i), errors));
  } else if (isRecord(value)) {
    for (const [k, v] of Object.entries(value)) {
      const prop = schema.properties?.[k];
      if (prop) checkKubernetesRules(prop, v, childPath(path, k), errors);
      else if (schema.additionalProperties) checkKubernetesRules(schema.additionalProperties, v, indexPath(path, k), errors);
    }
  }
}

/** A policy message names its field first ("spec.x.y: why"). */
function admissionError(message: string): ValidationError {
  const m = /^((?:spec|metadata)\.[\w.]+)(?: [^:]*)?: /.exec(message);
  return m ? { path: m[1]!, message: `Forbidden: ${message.slice(m[0].length)}` } : { path: '', message: `Forbidden: ${message}` };
}

// ---- Dispatch by apiVersion and kind ----

/** True for objects of the netwarden.io group, which this validator is responsible for. */
export function isNetwardenObject(obj: unknown): boolean {
  return isRecord(obj) && typeof obj.apiVersion === 'string' && obj.apiVersion.split('/')[0] === GROUP;
}

/** The CRD of a netwarden.io/v1alpha1 object's kind, if it is one. */
export function definitionFor(obj: unknown): CrdDefinition | undefined {
  if (!isRecord(obj) || obj.apiVersion !== API_VERSION) return undefined;
  return CRD_DEFINITIONS.find((d) => d.type.kind === obj.kind);
}

function checkTypeMeta(obj: Json): ValidationError[] {
  if (obj.apiVersion !== API_VERSION) {
    return [{ path: 'apiVersion', message: `Unsupported value: ${describe(obj.apiVersion)}: supported values: "${API_VERSION}"` }];
  }
  const kinds = CRD_DEFINITIONS.map((d) => JSON.stringify(d.type.kind)).join(', ');
  return [{ path: 'kind', message: `Unsupported value: ${describe(obj.kind)}: supported values: ${kinds}` }];
}

function checkName(obj: Json): ValidationError[] {
  const meta = isRecord(obj.metadata) ? obj.metadata : {};
  if (typeof meta.name === 'string' && meta.name !== '') return [];
  if (typeof meta.generateName === 'string' && meta.generateName !== '') return [];
  return [{ path: 'metadata.name', message: 'Required value: name or generateName is required' }];
}

/**
 * Validate one object and apply its defaults. Objects outside the netwarden.io group are passed
 * over (no errors, returned unchanged).
 */
export interface ValidateOptions {
  /**
   * Also apply config/admission's policies with their shipped settings, as `netwarden validate`
   * does for a manifest bound for a default installation. The controller does not: the cluster's
   * own policy (with its own settings) already ran at admission.
   */
  admissionPolicies?: boolean;
}

export function validateAndDefault(obj: unknown, opts: ValidateOptions = {}): ValidationResult {
  if (!isRecord(obj)) return { object: obj, errors: [{ path: '', message: 'must be an object' }] };
  if (!isNetwardenObject(obj)) return { object: obj, errors: [] };
  const def = definitionFor(obj);
  if (!def) return { object: obj, errors: checkTypeMeta(obj) };
  const object = structuredClone(obj);
  const validate = validatorFor(def);
  const errors = checkName(object);
  if (!validate(object)) errors.push(...(validate.errors ?? []).map(fromAjvError).filter((e): e is ValidationError => e !== undefined));
  checkKubernetesRules(def.schema, object, '', errors);
  // The installation's admission policies see the object as stored: after defaulting, valid.
  if (opts.admissionPolicies && errors.length === 0) errors.push(...admissionViolations(def.type.kind, object).map(admissionError));
  return { object, errors };
}

/** The errors of one object; objects outside the netwarden.io group have none. */
export function validateObject(obj: unknown, opts: ValidateOptions = {}): ValidationError[] {
  return validateAndDefault(obj, opts).errors;
}

/**
 * A copy of a Netwarden object with the schema defaults applied, as the API server would store it
 * (invalid fields are left as they are): a user-written object comes back as the stored type.
 */
export function withDefaults(obj: DropTailInput): DropTail;
export function withDefaults(obj: PacketCaptureInput): PacketCapture;
export function withDefaults(obj: AuditForwarderInput): AuditForwarder;
export function withDefaults(obj: unknown): unknown;
export function withDefaults(obj: unknown): unknown {
  return validateAndDefault(obj).object;
}

/**
 * A validator for a wire format that is not a Kubernetes object (e.g. the agents' node reports):
 * the same ajv rules and messages, unknown fields refused; each error names its field path.
 */
export function schemaValidator(schema: JSONSchemaProps): (value: unknown) => ValidationError[] {
  const validate = ajv.compile(toAjvSchema(schema));
  return (value) => {
    if (validate(value)) return [];
    return (validate.errors ?? []).map(fromAjvError).filter((e): e is ValidationError => e !== undefined);
  };
}

// The building blocks every kind's schema is written with. Each kind writes its OpenAPI v3
// structural schema once, `as const`; FromSchema derives the TypeScript types from that literal, so
// the CRD (hack/gen-crds.ts), the offline validator (validate.ts) and the types cannot drift apart.

import type { V1ObjectMeta } from '@kubernetes/client-node';
import type { ResourceType } from './meta.js';
import { DURATION_PATTERN } from '../util/duration.js';

/** One x-kubernetes-validations entry: a CEL rule evaluated with `self` bound to the field. */
export interface ValidationRule {
  readonly rule: string;
  readonly message?: string;
  /** Where the error is reported, relative to the field carrying the rule (e.g. `.endTime`). */
  readonly fieldPath?: string;
  readonly reason?: 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueRequired' | 'FieldValueDuplicate';
}

/** The subset of apiextensions.k8s.io/v1 JSONSchemaProps that structural schemas use. */
export interface JSONSchemaProps {
  readonly type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  readonly description?: string;
  readonly format?: 'date-time' | 'uri' | 'byte' | 'int32' | 'int64';
  readonly default?: unknown;
  readonly enum?: readonly unknown[];
  readonly pattern?: string;
  readonly minLength?: number;
  readonly maxLength?: number;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly minItems?: number;
  readonly maxItems?: number;
  readonly maxProperties?: number;
  readonly required?: readonly string[];
  readonly properties?: { readonly [name: string]: JSONSchemaProps };
  readonly additionalProperties?: JSONSchemaProps;
  readonly items?: JSONSchemaProps;
  readonly anyOf?: readonly JSONSchemaProps[];
  readonly 'x-kubernetes-int-or-string'?: true;
  readonly 'x-kubernetes-preserve-unknown-fields'?: true;
  readonly 'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  readonly 'x-kubernetes-list-map-keys'?: readonly string[];
  readonly 'x-kubernetes-map-type'?: 'atomic' | 'granular';
  readonly 'x-kubernetes-validations'?: readonly ValidationRule[];
}

// ---- Deriving TypeScript types from a schema literal ----

/** 'read': as stored by the API server, defaulted fields present. 'input': what a user may write. */
export type SchemaMode = 'read' | 'input';

type Simplify<T> = { [K in keyof T]: T[K] } & {};

type RequiredNames<S> = S extends { readonly required: readonly (infer R)[] } ? R : never;
type DefaultedNames<P> = { [K in keyof P]: P[K] extends { readonly default: unknown } ? K : never }[keyof P];
type PresentNames<S, P, M extends SchemaMode> = RequiredNames<S> | (M extends 'read' ? DefaultedNames<P> : never);

type ObjectOf<P, Present, M extends SchemaMode> = Simplify<
  { -readonly [K in keyof P as K extends Present ? K : never]: FromSchema<P[K], M> } & {
    -readonly [K in keyof P as K extends Present ? never : K]?: FromSchema<P[K], M>;
  }
>;

/** The TypeScript type of the values a schema literal (declared `as const`) accepts. */
export type FromSchema<S, M extends SchemaMode = 'read'> = S extends { readonly 'x-kubernetes-int-or-string': true }
  ? number | string
  : S extends { readonly enum: readonly (infer E)[] }
    ? E
    : S extends { readonly type: 'string' }
      ? string
      : S extends { readonly type: 'integer' | 'number' }
        ? number
        : S extends { readonly type: 'boolean' }
          ? boolean
          : S extends { readonly type: 'array'; readonly items: infer I }
            ? FromSchema<I, M>[]
            : S extends { readonly type: 'object'; readonly properties: infer P }
              ? ObjectOf<P, PresentNames<S, P, M>, M>
              : S extends { readonly type: 'object'; readonly additionalProperties: infer A }
                ? { [key: string]: FromSchema<A, M> }
                : S extends { readonly type: 'object' }
                  ? { [key: string]: unknown }
                  : unknown;

/** Compile-time equality, for asserting that a hand-written type matches a derived one. */
export type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
export type Assert<T extends true> = T;

/** A whole object of one kind, as the API server returns it. */
export interface NetwardenObject<K extends string, Spec, Status> {
  apiVersion: 'netwarden.io/v1alpha1';
  kind: K;
  metadata: V1ObjectMeta;
  spec: Spec;
  status?: Status;
}

// ---- CRD metadata ----

export interface PrinterColumn {
  readonly name: string;
  readonly type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  readonly jsonPath: string;
  readonly description?: string;
  readonly format?: string;
  readonly priority?: number;
}

/** Everything hack/gen-crds.ts needs to render one CustomResourceDefinition. */
export interface CrdDefinition {
  readonly type: ResourceType;
  readonly singular: string;
  readonly shortNames: readonly string[];
  readonly categories: readonly string[];
  readonly printerColumns: readonly PrinterColumn[];
  /** The openAPIV3Schema of the single served and stored version. */
  readonly schema: JSONSchemaProps;
}

export const CATEGORY = 'netwarden';

/** READY and AGE end every kind's printer columns. */
export const readyColumn = {
  name: 'Ready',
  type: 'string',
  jsonPath: '.status.conditions[?(@.type=="Ready")].status',
  description: 'Whether the resource is fully working (Ready condition).',
} as const satisfies PrinterColumn;
export const ageColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' } as const satisfies PrinterColumn;

// ---- Shared schema fragments ----

/** Go-style durations such as 90s, 1m30s, 1.5h (the subset CEL's duration() also parses). */
export function durationSchema(description: string) {
  return { type: 'string', pattern: DURATION_PATTERN, maxLength: 32, description } as const;
}

export const dateTimeSchema = { type: 'string', format: 'date-time' } as const;

/** A label map such as a nodeSelector. */
export const stringMapSchema = { type: 'object', additionalProperties: { type: 'string' } } as const;

/** metav1.LabelSelector. */
export const labelSelectorSchema = {
  type: 'object',
  'x-kubernetes-map-type': 'atomic',
  properties: {
    matchLabels: stringMapSchema,
    matchExpressions: {
      type: 'array',
      'x-kubernetes-list-type': 'atomic',
      items: {
        type: 'object',
        required: ['key', 'operator'],
        properties: {
          key: { type: 'string' },
          operator: { type: 'string', enum: ['In', 'NotIn', 'Exists', 'DoesNotExist'] },
          values: { type: 'array', 'x-kubernetes-list-type': 'atomic', items: { type: 'string' } },
        },
      },
    },
  },
} as const satisfies JSONSchemaProps;

/** A key of a Secret in a named namespace (the cluster-scoped kinds have no namespace of their own). */
export const secretKeyRefSchema = {
  type: 'object',
  required: ['name', 'key'],
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 253 },
    namespace: { type: 'string', minLength: 1, maxLength: 63, description: "Netwarden's own namespace (netwarden-system), the default: Secrets elsewhere are never read." },
    key: { type: 'string', minLength: 1, maxLength: 253 },
  },
} as const satisfies JSONSchemaProps;

/** metav1.Condition, with the API server's own bounds and patterns. */
export const conditionSchema = {
  type: 'object',
  required: ['type', 'status', 'reason', 'message', 'lastTransitionTime'],
  properties: {
    type: { type: 'string', maxLength: 316, pattern: '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$' },
    status: { type: 'string', enum: ['True', 'False', 'Unknown'] },
    reason: { type: 'string', minLength: 1, maxLength: 1024, pattern: '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$' },
    message: { type: 'string', maxLength: 32768 },
    lastTransitionTime: dateTimeSchema,
    observedGeneration: { type: 'integer', format: 'int64', minimum: 0 },
  },
} as const satisfies JSONSchemaProps;

/** status.conditions: one entry per type, so several writers can server-side-apply their own. */
export const conditionsSchema = {
  type: 'array',
  maxItems: 32,
  'x-kubernetes-list-type': 'map',
  'x-kubernetes-list-map-keys': ['type'],
  items: conditionSchema,
} as const satisfies JSONSchemaProps;

export const observedGenerationSchema = {
  type: 'integer',
  format: 'int64',
  minimum: 0,
  description: 'The metadata.generation the controller last acted on.',
} as const satisfies JSONSchemaProps;

/** A per-node list that each node agent owns one entry of through server-side apply. */
export function perNodeList<const I extends JSONSchemaProps>(items: I, description: string) {
  return {
    type: 'array',
    description,
    maxItems: 5000,
    'x-kubernetes-list-type': 'map',
    'x-kubernetes-list-map-keys': ['node'],
    items,
  } as const;
}

/**
 * The root openAPIV3Schema of a kind: apiVersion, kind, metadata, spec and status. A spec with no
 * required fields defaults to {} (so its own defaults apply); otherwise spec itself is required.
 */
export function rootSchema(description: string, spec: JSONSchemaProps, status: JSONSchemaProps): JSONSchemaProps {
  const specRequired = (spec.required ?? []).length > 0;
  return {
    type: 'object',
    description,
    ...(specRequired ? { required: ['spec'] } : {}),
    properties: {
      apiVersion: { type: 'string' },
      kind: { type: 'string' },
      metadata: { type: 'object' },
      spec: specRequired ? spec : { ...spec, default: {} },
      status,
    },
  };
}

// PacketCapture retention and export: how long a finished capture's files stay on the nodes, what a
// node's capture byte budget evicts first, and the upload of each pcap file to S3. Kept apart from
// packetcapture.ts (which only spreads these properties in) so the two evolve without conflicts.
//
// Shape: `spec.ttlSecondsAfterFinished` is the field a Kubernetes user knows from Jobs, at the same
// place and with the same meaning (seconds after the capture finished); `spec.deleteObject` says
// whether the object goes too, which a Job always does but a capture should not by default: its
// status is the record of what was captured and uploaded. Calico's PacketCapture has neither field,
// so a Calico object stays valid and keeps its files until deleted, as in Calico.
import type { JSONSchemaProps } from './schema.js';
import { dateTimeSchema } from './schema.js';
import { s3SinkSchema } from './auditforwarder.js';
import { joinS3Key } from '../util/s3key.js';

/** The phases of a capture that has finished: what ttlSecondsAfterFinished and node eviction mean by "finished". */
export const FINISHED_CAPTURE_PHASES = ['Finished', 'Stopped', 'Failed'] as const;

export function isFinishedCapturePhase(phase: string | undefined): boolean {
  return (FINISHED_CAPTURE_PHASES as readonly string[]).includes(phase ?? '');
}

/**
 * The annotation on a Secret in Netwarden's namespace that lets PacketCaptures of the named
 * namespaces use it ("team-a,team-b", or "*" for every namespace). The tenancy rule is that only
 * Secrets of Netwarden's own namespace are ever read, where tenants cannot write; a namespaced
 * object may in addition use one only where the admin who wrote it said so, or any tenant could
 * write into the admin's bucket with the admin's keys.
 */
export const ALLOWED_NAMESPACES_ANNOTATION = 'netwarden.io/allowed-namespaces';

/** Whether the Secret's annotations let objects of `namespace` use it. */
export function secretAllowsNamespace(annotations: Readonly<Record<string, string>> | undefined, namespace: string): boolean {
  const value = annotations?.[ALLOWED_NAMESPACES_ANNOTATION];
  if (!value) return false;
  return value.split(',').map((s) => s.trim()).some((n) => n === '*' || n === namespace);
}

export const captureS3ExportSchema = {
  type: 'object',
  required: ['bucket', 'credentialsSecretRef'],
  properties: {
    endpoint: s3SinkSchema.properties.endpoint,
    bucket: s3SinkSchema.properties.bucket,
    prefix: { ...s3SinkSchema.properties.prefix, description: 'Key prefix: objects are <prefix>/<namespace>/<capture>/<node>/<file>.' },
    region: s3SinkSchema.properties.region,
    forcePathStyle: s3SinkSchema.properties.forcePathStyle,
    allowInsecure: { type: 'boolean', description: 'Allow an http:// endpoint, which sends the packets in clear text.' },
    credentialsSecretRef: {
      type: 'object',
      required: ['name'],
      description: `Secret with keys accessKeyID and secretAccessKey in Netwarden's own namespace, annotated ${ALLOWED_NAMESPACES_ANNOTATION} with this capture's namespace (or "*"). Required: the node's own (ambient) credentials are never used for a namespace's export.`,
      properties: { name: { type: 'string', minLength: 1, maxLength: 253 } },
    },
  },
} as const satisfies JSONSchemaProps;

/** Spread into PacketCapture's spec properties. */
export const captureRetentionSpecProperties = {
  ttlSecondsAfterFinished: {
    type: 'integer',
    format: 'int32',
    minimum: 0,
    description: "As a Job's: this many seconds after the capture finished (phase Finished, Stopped or Failed), its files are deleted on every node; kept until the object is deleted when unset.",
  },
  deleteObject: { type: 'boolean', description: 'With ttlSecondsAfterFinished: delete the PacketCapture itself too when the files expire.' },
  export: {
    type: 'object',
    description: "Upload each node's pcap files as they are rotated or the capture finishes; the files stay on the nodes (and downloadable) until they expire.",
    properties: { s3: captureS3ExportSchema },
  },
} as const satisfies Record<string, JSONSchemaProps>;

/** Spread into PacketCapture's spec validations. */
export const captureRetentionValidations = [
  { rule: '!has(self.deleteObject) || !self.deleteObject || has(self.ttlSecondsAfterFinished)', message: 'deleteObject needs ttlSecondsAfterFinished', fieldPath: '.deleteObject' },
] as const;

/** Uploaded objects listed per node; beyond these only the counts grow. */
export const MAX_LISTED_UPLOADS = 100;
/** Evicted files listed per node; beyond these only the counts grow. */
export const MAX_LISTED_EVICTIONS = 100;

export const UPLOAD_STATES = ['Uploading', 'Uploaded', 'Refused', 'Error'] as const;
export type UploadState = (typeof UPLOAD_STATES)[number];

/** Spread into a node's status.files entry (the agent's). */
export const captureFilesRetentionProperties = {
  uploads: {
    type: 'object',
    description: "This node's uploads to spec.export.s3.",
    properties: {
      state: { type: 'string', enum: UPLOAD_STATES, description: 'Refused: the Secret may not be used from this namespace (nothing is uploaded); Error: the last upload failed (retried).' },
      message: { type: 'string', maxLength: 1024 },
      objects: {
        type: 'array',
        maxItems: MAX_LISTED_UPLOADS,
        'x-kubernetes-list-type': 'atomic',
        description: `The first ${MAX_LISTED_UPLOADS} objects uploaded; count and bytes include the rest.`,
        items: {
          type: 'object',
          required: ['key', 'bytes'],
          properties: { key: { type: 'string', maxLength: 1024 }, bytes: { type: 'integer', format: 'int64', minimum: 0 } },
        },
      },
      count: { type: 'integer', minimum: 0, description: 'Objects uploaded.' },
      bytes: { type: 'integer', format: 'int64', minimum: 0, description: 'Bytes uploaded.' },
      pending: { type: 'integer', minimum: 0, description: 'Complete files not uploaded yet.' },
    },
  },
  evicted: {
    type: 'object',
    description: "Files of this finished capture that the node deleted to make room under its capture byte budget (--capture-max-bytes) for a running capture; the oldest finished captures' files go first.",
    properties: {
      fileNames: { type: 'array', maxItems: MAX_LISTED_EVICTIONS, 'x-kubernetes-list-type': 'atomic', items: { type: 'string', maxLength: 512 } },
      count: { type: 'integer', minimum: 0 },
      bytes: { type: 'integer', format: 'int64', minimum: 0 },
      at: { ...dateTimeSchema, description: 'The latest eviction.' },
      reason: { type: 'string', maxLength: 1024 },
    },
  },
} as const satisfies Record<string, JSONSchemaProps>;

/** Spread into PacketCapture's status properties (the controller's). */
export const captureRetentionStatusProperties = {
  finishedAt: { ...dateTimeSchema, description: 'When the capture finished (phase Finished, Stopped or Failed); what ttlSecondsAfterFinished counts from.' },
  filesExpireAt: { ...dateTimeSchema, description: 'When the files will be deleted on every node (finishedAt + ttlSecondsAfterFinished), the same for each node.' },
  uploadedObjects: { type: 'integer', minimum: 0, description: 'Objects uploaded to spec.export.s3, summed over the nodes.' },
  uploadedBytes: { type: 'integer', format: 'int64', minimum: 0, description: 'Bytes uploaded, summed over the nodes.' },
} as const satisfies Record<string, JSONSchemaProps>;

/** The object key of one capture file: <prefix>/<namespace>/<capture>/<node>/<file>. */
export function captureObjectKey(prefix: string | undefined, namespace: string, capture: string, node: string, fileName: string): string {
  return joinS3Key(prefix, [namespace, capture, node, fileName]);
}

/** Conditions of the retention and export story. */
export const FILES_EXPIRED_CONDITION = 'FilesExpired';
export const EXPORTED_CONDITION = 'Exported';
export const FILES_EVICTED_CONDITION = 'FilesEvicted';

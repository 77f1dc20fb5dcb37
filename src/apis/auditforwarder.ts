// AuditForwarder (cluster-scoped): follow the API server's audit log on the control-plane nodes,
// filter it, and ship it in batches to exactly one sink (webhook, S3 or local files).

import { AuditForwarderType } from './meta.js';
import {
  CATEGORY,
  ageColumn,
  conditionsSchema,
  durationSchema,
  observedGenerationSchema,
  readyColumn,
  rootSchema,
  secretKeyRefSchema,
  stringMapSchema,
  type CrdDefinition,
  type FromSchema,
  type JSONSchemaProps,
  type NetwardenObject,
} from './schema.js';
import { nodeSummaryProperties, unhealthyColumn } from './nodesummary.js';

const stringList = (description: string, maxItems = 64) =>
  ({ type: 'array', maxItems, 'x-kubernetes-list-type': 'atomic', items: { type: 'string', maxLength: 253 }, description }) as const;

/** http(s) URLs only: the forwarder speaks nothing else. */
const httpURLSchema = { type: 'string', format: 'uri', pattern: '^https?://', maxLength: 2048 } as const;

/** One filter rule; an event matching every set field gets the rule's action. */
export const auditRuleSchema = {
  type: 'object',
  required: ['action'],
  properties: {
    action: { type: 'string', enum: ['drop', 'keep'] },
    stages: {
      type: 'array',
      maxItems: 4,
      'x-kubernetes-list-type': 'set',
      items: { type: 'string', enum: ['RequestReceived', 'ResponseStarted', 'ResponseComplete', 'Panic'] },
    },
    verbs: stringList('e.g. get, list, watch, create, update, patch, delete.'),
    users: stringList('Usernames, e.g. system:kube-proxy.'),
    groups: stringList('User groups, e.g. system:nodes.'),
    resources: {
      type: 'array',
      maxItems: 64,
      'x-kubernetes-list-type': 'atomic',
      items: {
        type: 'object',
        properties: {
          group: { type: 'string', maxLength: 253, description: 'API group; "" is the core group.' },
          resources: stringList('Resource plurals, e.g. pods; all when empty.'),
          subresources: stringList('e.g. log, status; any when empty.'),
        },
      },
    },
    namespaces: stringList('Namespaces; "" matches cluster-scoped requests.'),
  },
} as const satisfies JSONSchemaProps;

export const webhookSinkSchema = {
  type: 'object',
  required: ['url'],
  properties: {
    url: { ...httpURLSchema, description: 'Endpoint the batches are POSTed to.' },
    format: { type: 'string', enum: ['eventList', 'ndjson'], default: 'eventList', description: 'eventList: an audit.k8s.io/v1 EventList per batch; ndjson: one event per line.' },
    gzip: { type: 'boolean', default: false, description: "Send the body gzip-compressed (Content-Encoding: gzip); the receiver must decode it, which Falco's k8saudit webhook does not." },
    headersSecretRef: { ...secretKeyRefSchema, description: 'Secret key holding extra headers, one "Name: value" per line.' },
    bearerTokenSecretRef: { ...secretKeyRefSchema, description: 'Secret key holding a bearer token.' },
    caBundle: { type: 'string', format: 'byte', description: 'PEM CA bundle (base64) to verify the server; the system roots when unset.' },
    proxyURL: { ...httpURLSchema, description: 'HTTP proxy to send through.' },
    allowInsecure: { type: 'boolean', description: 'Allow an http:// url, which sends the audit log and any token or headers in clear text.' },
  },
} as const satisfies JSONSchemaProps;

export const s3SinkSchema = {
  type: 'object',
  required: ['bucket'],
  properties: {
    endpoint: { ...httpURLSchema, description: 'S3-compatible endpoint; AWS when unset.' },
    bucket: { type: 'string', minLength: 3, maxLength: 63 },
    prefix: { type: 'string', maxLength: 512, description: 'Key prefix of the uploaded objects.' },
    region: { type: 'string', maxLength: 64 },
    credentialsSecretRef: {
      type: 'object',
      required: ['name'],
      description: "Secret with keys accessKeyID and secretAccessKey, in Netwarden's own namespace; ambient credentials when unset.",
      properties: { name: secretKeyRefSchema.properties.name, namespace: secretKeyRefSchema.properties.namespace },
    },
    forcePathStyle: { type: 'boolean', default: false, description: 'Use path-style URLs (most non-AWS servers need this).' },
    allowInsecure: { type: 'boolean', description: 'Allow an http:// endpoint, which sends the audit log in clear text.' },
  },
} as const satisfies JSONSchemaProps;

export const fileSinkSchema = {
  type: 'object',
  required: ['directory'],
  properties: {
    directory: { type: 'string', minLength: 1, maxLength: 4096, pattern: '^/', description: 'Absolute directory on the node.' },
    maxFileBytes: { type: 'integer', format: 'int64', default: 104857600, minimum: 1024 },
    maxFiles: { type: 'integer', default: 10, minimum: 1, maximum: 10000 },
  },
} as const satisfies JSONSchemaProps;

export const auditSinkSchema = {
  type: 'object',
  properties: { webhook: webhookSinkSchema, s3: s3SinkSchema, file: fileSinkSchema },
  'x-kubernetes-validations': [
    { rule: '[has(self.webhook), has(self.s3), has(self.file)].filter(x, x).size() == 1', message: 'exactly one of webhook, s3 or file must be set' },
  ],
} as const satisfies JSONSchemaProps;

export const auditForwarderSpecSchema = {
  type: 'object',
  required: ['sink'],
  description: 'Where the audit log is, what of it to ship, and where to.',
  properties: {
    nodeSelector: { ...stringMapSchema, default: { 'node-role.kubernetes.io/control-plane': '' }, description: 'Nodes whose audit log is shipped.' },
    source: {
      type: 'object',
      default: {},
      properties: { path: { type: 'string', default: '/var/log/kubernetes/audit/audit.log', pattern: '^/', maxLength: 4096, description: 'Audit log file on the node (rotated files are followed); it must lie under a directory the agent reads audit logs from (--audit-log-dir, default /var/log/kubernetes/audit).' } },
    },
    clusterID: { type: 'string', default: 'default_cluster', minLength: 1, maxLength: 253, description: 'Identifies this cluster to the receiver.' },
    batch: {
      type: 'object',
      default: {},
      description: 'A batch is sent when any limit is reached.',
      properties: {
        maxBytes: { type: 'integer', format: 'int64', default: 52428800, minimum: 1024, maximum: 1073741824, description: "Largest batch before compression; keep it below the receiver's request limit (Falco's k8saudit webhook: 12 MiB)." },
        maxWait: { ...durationSchema('Longest time an event waits in a batch.'), default: '60s' },
        maxEvents: { type: 'integer', minimum: 1 },
      },
    },
    filter: {
      type: 'object',
      default: {},
      description: 'The first rule an event matches decides; events no rule matches are kept.',
      properties: { rules: { type: 'array', maxItems: 256, 'x-kubernetes-list-type': 'atomic', default: [], items: auditRuleSchema } },
    },
    sink: auditSinkSchema,
  },
} as const satisfies JSONSchemaProps;

export const auditForwarderStatusSchema = {
  type: 'object',
  properties: {
    observedGeneration: observedGenerationSchema,
    conditions: conditionsSchema,
    ...nodeSummaryProperties,
    shippedBytes: { type: 'integer', format: 'int64', minimum: 0, description: 'Bytes the sinks acknowledged, summed over the reporting nodes.' },
    shippedEvents: { type: 'integer', format: 'int64', minimum: 0, description: 'Events the sinks acknowledged, summed (delivery is at least once: a receiver may hold more).' },
    lagBytes: { type: 'integer', format: 'int64', minimum: 0, description: 'Bytes written to the audit logs but not shipped yet, summed.' },
    bufferedBytes: { type: 'integer', format: 'int64', minimum: 0, description: 'Bytes read into the agents\' disk buffers and not delivered yet, summed.' },
    quarantinedLines: { type: 'integer', format: 'int64', minimum: 0, description: 'Lines shipped in quarantine form because they were not audit events, summed.' },
    gaps: { type: 'integer', format: 'int64', minimum: 0, description: 'Times lines were skipped because a file was deleted before it was read to its end, summed; the newest is among the problems.' },
    skippedBytes: { type: 'integer', format: 'int64', minimum: 0, description: 'Bytes known to be skipped in those gaps, summed.' },
  },
} as const satisfies JSONSchemaProps;

export const auditForwarderSchema = rootSchema('AuditForwarder ships the API server audit log to a webhook, S3 or files.', auditForwarderSpecSchema, auditForwarderStatusSchema);

export type AuditRule = FromSchema<typeof auditRuleSchema>;
export type WebhookSink = FromSchema<typeof webhookSinkSchema>;
export type S3Sink = FromSchema<typeof s3SinkSchema>;
export type FileSink = FromSchema<typeof fileSinkSchema>;
export type AuditSink = FromSchema<typeof auditSinkSchema>;
export type AuditForwarderSpec = FromSchema<typeof auditForwarderSpecSchema>;
export type AuditForwarderSpecInput = FromSchema<typeof auditForwarderSpecSchema, 'input'>;
export type AuditForwarderStatus = FromSchema<typeof auditForwarderStatusSchema>;
export type AuditForwarder = NetwardenObject<'AuditForwarder', AuditForwarderSpec, AuditForwarderStatus>;
/** An AuditForwarder as a user writes it: defaulted fields may be left out. */
export type AuditForwarderInput = NetwardenObject<'AuditForwarder', AuditForwarderSpecInput, AuditForwarderStatus>;

export const auditForwarderCrd: CrdDefinition = {
  type: AuditForwarderType,
  singular: 'auditforwarder',
  shortNames: ['af'],
  categories: [CATEGORY],
  printerColumns: [
    { name: 'Nodes', type: 'integer', jsonPath: '.status.nodeCount', description: 'Nodes whose agents report.' },
    unhealthyColumn,
    { name: 'Shipped', type: 'integer', jsonPath: '.status.shippedBytes', description: 'Bytes shipped.' },
    { name: 'Lag', type: 'integer', jsonPath: '.status.lagBytes', description: 'Bytes not shipped yet.' },
    readyColumn,
    ageColumn,
  ],
  schema: auditForwarderSchema,
};

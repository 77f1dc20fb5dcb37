// PacketCapture (namespaced): capture the traffic of selected pods into pcap files on their nodes.
// A superset of Calico's projectcalico.org/v3 PacketCapture: a Calico object with only its
// apiVersion changed is valid here and means the same.

import { PacketCaptureType } from './meta.js';
import {
  CATEGORY,
  ageColumn,
  conditionsSchema,
  dateTimeSchema,
  durationSchema,
  labelSelectorSchema,
  observedGenerationSchema,
  perNodeList,
  rootSchema,
  type CrdDefinition,
  type FromSchema,
  type JSONSchemaProps,
  type NetwardenObject,
} from './schema.js';
import { captureFilesRetentionProperties, captureRetentionSpecProperties, captureRetentionStatusProperties, captureRetentionValidations } from './captureretention.js';

/** Protocol names Calico accepts; a number 1..255 is accepted too. */
export const PROTOCOL_NAMES = ['TCP', 'UDP', 'ICMP', 'ICMPv6', 'SCTP', 'UDPLite'] as const;

export const MIB = 1024 * 1024;

/** spec.format: pcap stays the default, as Calico writes it. */
export const CAPTURE_FORMATS = ['pcap', 'pcapng'] as const;
export type CaptureFormat = (typeof CAPTURE_FORMATS)[number];

// int-or-string: minimum/maximum only constrain numbers and pattern only strings, both in JSON
// Schema and in the API server, so the two forms are validated side by side without CEL.
export const protocolSchema = {
  'x-kubernetes-int-or-string': true,
  anyOf: [{ type: 'integer' }, { type: 'string' }],
  minimum: 1,
  maximum: 255,
  maxLength: 8,
  pattern: `^(${PROTOCOL_NAMES.join('|')})$`,
  description: `${PROTOCOL_NAMES.join(', ')} or an IP protocol number 1..255.`,
} as const satisfies JSONSchemaProps;

export const portSchema = {
  'x-kubernetes-int-or-string': true,
  anyOf: [{ type: 'integer' }, { type: 'string' }],
  minimum: 1,
  maximum: 65535,
  maxLength: 11,
  pattern: '^[0-9]{1,5}(:[0-9]{1,5})?$',
  description: 'A port number or an inclusive range "low:high".',
  // The matches() guards keep int() from failing on strings the pattern already rejects.
  'x-kubernetes-validations': [
    {
      rule: "type(self) != string || !self.matches('^[0-9]{1,5}:[0-9]{1,5}$') || (int(self.split(':')[0]) >= 1 && int(self.split(':')[0]) <= int(self.split(':')[1]) && int(self.split(':')[1]) <= 65535)",
      message: 'a port range must be "low:high" with 1 <= low <= high <= 65535',
    },
    {
      rule: "type(self) != string || !self.matches('^[0-9]{1,5}$') || (int(self) >= 1 && int(self) <= 65535)",
      message: 'a port must be between 1 and 65535',
    },
  ],
} as const satisfies JSONSchemaProps;

export const captureFilterSchema = {
  type: 'object',
  properties: {
    protocol: protocolSchema,
    ports: { type: 'array', maxItems: 32, 'x-kubernetes-list-type': 'atomic', items: portSchema, description: 'Ports (either end) to capture.' },
  },
  'x-kubernetes-validations': [
    {
      rule: "!has(self.ports) || size(self.ports) == 0 || !has(self.protocol) || (type(self.protocol) == string ? self.protocol in ['TCP', 'UDP', 'SCTP', 'UDPLite'] : self.protocol in [6, 17, 132, 136])",
      message: 'ports are only valid with protocol TCP, UDP, SCTP or UDPLite (or no protocol)',
      fieldPath: '.ports',
    },
  ],
} as const satisfies JSONSchemaProps;

export const packetCaptureSpecSchema = {
  type: 'object',
  description: 'Which pods to capture, what traffic, when, and how much.',
  properties: {
    selector: {
      type: 'string',
      default: 'all()',
      maxLength: 1024,
      description: 'Calico selector over the labels of the pods in this namespace, e.g. app == "web"; all() selects every pod.',
    },
    podSelector: { ...labelSelectorSchema, description: 'Kubernetes label selector; an alternative to a selector other than all().' },
    filters: {
      type: 'array',
      maxItems: 16,
      'x-kubernetes-list-type': 'atomic',
      description: 'Capture a packet when any filter matches it; everything when empty.',
      items: captureFilterSchema,
    },
    direction: { type: 'string', enum: ['ingress', 'egress', 'both'], default: 'both', description: 'Traffic direction relative to the pod.' },
    startTime: { ...dateTimeSchema, description: 'Start capturing at this time; immediately when unset.' },
    endTime: { ...dateTimeSchema, description: 'Stop capturing at this time; never when unset (unless another limit stops it).' },
    duration: { ...durationSchema('Stop capturing this long after the start; an alternative to endTime.') },
    maxBytesPerPod: { type: 'integer', format: 'int64', minimum: 1, description: 'Stop capturing a pod after this many bytes of pcap.' },
    fileSizeBytes: { type: 'integer', format: 'int64', default: 10 * MIB, minimum: 64 * 1024, maximum: 1024 * MIB, description: 'Rotate pcap files at this size.' },
    maxFiles: { type: 'integer', default: 10, minimum: 1, maximum: 1000, description: 'Pcap files kept per pod; the oldest is deleted on rotation.' },
    snapLen: { type: 'integer', default: 262144, minimum: 64, maximum: 262144, description: 'Bytes kept of each packet.' },
    format: {
      type: 'string',
      enum: CAPTURE_FORMATS,
      default: 'pcap',
      description: "File format: pcap (Calico's), or pcapng with one interface per pod (namespace/pod, node, interface, direction) and each packet's pod in its comment.",
    },
    includeMetadata: {
      type: 'boolean',
      default: false,
      description: "At the start, each node also writes metadata-<node>.txt next to the pcap files: a snapshot of its network state (ip -d addr, ip route, ip neigh, nft list ruleset).",
    },
    ...captureRetentionSpecProperties,
  },
  // Whichever limit (endTime, duration, maxBytesPerPod, a stop) comes first ends the capture.
  'x-kubernetes-validations': [
    {
      rule: '!has(self.startTime) || !has(self.endTime) || self.endTime > self.startTime',
      message: 'endTime must be after startTime',
      fieldPath: '.endTime',
    },
    {
      rule: '!has(self.endTime) || !has(self.duration)',
      message: 'duration and endTime are mutually exclusive',
      fieldPath: '.duration',
    },
    {
      rule: "!has(self.podSelector) || !has(self.selector) || self.selector == 'all()'",
      message: 'podSelector and a selector other than all() are mutually exclusive',
      fieldPath: '.podSelector',
    },
    ...captureRetentionValidations,
  ],
} as const satisfies JSONSchemaProps;

export const captureTargetSchema = {
  type: 'object',
  required: ['pod'],
  properties: {
    pod: { type: 'string', maxLength: 253 },
    node: { type: 'string', maxLength: 253 },
    ip: { type: 'string', maxLength: 64 },
    interface: { type: 'string', maxLength: 64, description: 'Host-side interface of the pod.' },
  },
} as const satisfies JSONSchemaProps;

/** Calico's file states, so Calico tooling reading status.files understands them. */
export const FILE_STATES = ['Scheduled', 'WaitingForTraffic', 'Capturing', 'Finished', 'Error'] as const;

/**
 * Why a node's agent does not capture one of the capture's targets: the IP is not owned by a
 * running pod of the capture's namespace on that node, or a node quota holds it back for now.
 */
export const NOT_CAPTURED_REASONS = ['TargetNotOwned', 'QuotaExceeded'] as const;
export type NotCapturedReason = (typeof NOT_CAPTURED_REASONS)[number];

export const notCapturedSchema = {
  type: 'object',
  required: ['pod', 'reason'],
  properties: {
    pod: { type: 'string', maxLength: 253 },
    ip: { type: 'string', maxLength: 64 },
    reason: { type: 'string', enum: NOT_CAPTURED_REASONS },
    message: { type: 'string', maxLength: 512 },
  },
} as const satisfies JSONSchemaProps;

export const captureFilesSchema = {
  type: 'object',
  required: ['node'],
  properties: {
    node: { type: 'string', maxLength: 253 },
    directory: { type: 'string', maxLength: 4096 },
    fileNames: { type: 'array', maxItems: 10000, 'x-kubernetes-list-type': 'atomic', items: { type: 'string', maxLength: 512 } },
    bytes: { type: 'integer', format: 'int64', minimum: 0 },
    packets: { type: 'integer', format: 'int64', minimum: 0 },
    kernelDropped: { type: 'integer', format: 'int64', minimum: 0, description: 'Packets the kernel dropped before the capture saw them.' },
    state: { type: 'string', enum: FILE_STATES },
    message: { type: 'string', maxLength: 1024, description: "Why the node's capture is in its state (e.g. an Error's cause), and limits the agent lowered." },
    notCaptured: {
      type: 'array',
      maxItems: 1000,
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['pod'],
      description: "Targets on this node that its agent does not capture, and why (an IP no running pod of the namespace owns here, or a node quota).",
      items: notCapturedSchema,
    },
    ...captureFilesRetentionProperties,
  },
} as const satisfies JSONSchemaProps;

/** Queued: held back by a namespace or node capture quota; it starts by itself when there is room. */
export const CAPTURE_PHASES = ['Scheduled', 'Queued', 'WaitingForTraffic', 'Capturing', 'Finished', 'Stopped', 'Failed'] as const;

export const packetCaptureStatusSchema = {
  type: 'object',
  properties: {
    observedGeneration: observedGenerationSchema,
    conditions: conditionsSchema,
    phase: { type: 'string', enum: CAPTURE_PHASES },
    targets: {
      type: 'array',
      maxItems: 5000,
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['pod'],
      description: 'Pods being captured.',
      items: captureTargetSchema,
    },
    files: perNodeList(captureFilesSchema, 'Pcap files per node; each node agent owns its own entry.'),
    podCount: { type: 'integer', minimum: 0 },
    fileCount: { type: 'integer', minimum: 0 },
    totalBytes: { type: 'integer', format: 'int64', minimum: 0 },
    ...captureRetentionStatusProperties,
  },
} as const satisfies JSONSchemaProps;

export const packetCaptureSchema = rootSchema('PacketCapture captures the traffic of selected pods into pcap files.', packetCaptureSpecSchema, packetCaptureStatusSchema);

export type CaptureFilter = FromSchema<typeof captureFilterSchema>;
export type CaptureTarget = FromSchema<typeof captureTargetSchema>;
export type CaptureFiles = FromSchema<typeof captureFilesSchema>;
export type NotCaptured = FromSchema<typeof notCapturedSchema>;
export type CapturePhase = (typeof CAPTURE_PHASES)[number];
export type PacketCaptureSpec = FromSchema<typeof packetCaptureSpecSchema>;
export type PacketCaptureSpecInput = FromSchema<typeof packetCaptureSpecSchema, 'input'>;
export type PacketCaptureStatus = FromSchema<typeof packetCaptureStatusSchema>;
export type PacketCapture = NetwardenObject<'PacketCapture', PacketCaptureSpec, PacketCaptureStatus>;
/** A PacketCapture as a user writes it: defaulted fields may be left out. */
export type PacketCaptureInput = NetwardenObject<'PacketCapture', PacketCaptureSpecInput, PacketCaptureStatus>;

export const packetCaptureCrd: CrdDefinition = {
  type: PacketCaptureType,
  singular: 'packetcapture',
  shortNames: ['pcap'],
  categories: [CATEGORY],
  printerColumns: [
    { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
    { name: 'Pods', type: 'integer', jsonPath: '.status.podCount', description: 'Pods being captured.' },
    { name: 'Files', type: 'integer', jsonPath: '.status.fileCount', description: 'Pcap files written.' },
    { name: 'Size', type: 'integer', jsonPath: '.status.totalBytes', description: 'Bytes of pcap written.' },
    // A string, not a date: kubectl shows a date column as an age, and a future one as <invalid>.
    { name: 'Expires', type: 'string', jsonPath: '.status.filesExpireAt', description: 'When the files will be deleted on every node (spec.ttlSecondsAfterFinished).' },
    ageColumn,
  ],
  schema: packetCaptureSchema,
};

// DropTail (cluster-scoped): tail the kernel's packet-drop log lines on selected nodes and turn
// them into Kubernetes Events, metrics and a short list of recent drops in status.

import { DropTailType } from './meta.js';
import {
  CATEGORY,
  ageColumn,
  conditionsSchema,
  dateTimeSchema,
  durationSchema,
  observedGenerationSchema,
  readyColumn,
  rootSchema,
  stringMapSchema,
  type CrdDefinition,
  type FromSchema,
  type JSONSchemaProps,
  type NetwardenObject,
} from './schema.js';
import { nodeSummaryProperties, unhealthyColumn } from './nodesummary.js';

/**
 * Log prefixes that mark a drop by default: metal-stack's nftables firewall, the conventional
 * iptables LOG rule, Calico's Log action and the generic `DROP: ` many hand-written rules use.
 */
export const DEFAULT_PREFIXES = ['nftables-metal-dropped: ', 'iptables-dropped: ', 'calico-packet: ', 'DROP: '] as const;

/**
 * The kernel source's default reasons: drops that a policy made (netfilter, tc, cgroup BPF, IPsec
 * policy, reverse-path filter), not the kernel's own protocol and resource drops.
 */
export const DEFAULT_KERNEL_REASONS = ['NETFILTER_DROP', 'TC_INGRESS', 'TC_EGRESS', 'BPF_CGROUP_EGRESS', 'XFRM_POLICY', 'IP_RPFILTER'] as const;
/** In `reasons`: every drop reason but NOT_SPECIFIED (which must be named to be seen). */
export const ALL_REASONS = 'all';

/** Where the drop lines come from. Exactly the fields of the chosen type may be set. */
export const dropSourceSchema = {
  type: 'object',
  required: ['type'],
  properties: {
    type: {
      type: 'string',
      enum: ['nflog', 'journal', 'file', 'kernel'],
      description: "nflog: a netlink log group; journal: the systemd journal; file: a kernel log file; kernel: the kernel's own drops with their reason, through eBPF (no log rule needed).",
    },
    group: { type: 'integer', minimum: 0, maximum: 65535, description: 'nflog group the drop rules log to (nflog only).' },
    directory: { type: 'string', maxLength: 4096, description: 'Journal directory; the system journal when unset (journal only).' },
    matches: {
      type: 'array',
      maxItems: 16,
      'x-kubernetes-list-type': 'atomic',
      description: 'journalctl-style FIELD=VALUE matches; `_TRANSPORT=kernel` when unset (journal only).',
      items: { type: 'string', maxLength: 256, pattern: '^[A-Z0-9_]+=.*$' },
    },
    path: { type: 'string', minLength: 1, maxLength: 4096, description: 'Log file to follow, e.g. /var/log/kern.log (file only).' },
    reasons: {
      type: 'array',
      minItems: 1,
      maxItems: 64,
      'x-kubernetes-list-type': 'set',
      description: `Kernel drop reasons to report (kernel only): names of enum skb_drop_reason without SKB_DROP_REASON_, e.g. NETFILTER_DROP, NO_SOCKET, TCP_INVALID_SEQUENCE; "${ALL_REASONS}" for every reason but NOT_SPECIFIED. Default: ${DEFAULT_KERNEL_REASONS.join(', ')}.`,
      items: { type: 'string', minLength: 1, maxLength: 48, pattern: '^([A-Z][A-Z0-9_]*|all)$' },
    },
  },
  'x-kubernetes-validations': [
    { rule: "has(self.group) == (self.type == 'nflog')", message: 'group must be set for nflog sources and only for them', fieldPath: '.group' },
    { rule: "has(self.path) == (self.type == 'file')", message: 'path must be set for file sources and only for them', fieldPath: '.path' },
    { rule: "self.type == 'journal' || (!has(self.directory) && !has(self.matches))", message: 'directory and matches are only valid for journal sources' },
    { rule: "self.type == 'kernel' || !has(self.reasons)", message: 'reasons are only valid for kernel sources', fieldPath: '.reasons' },
  ],
} as const satisfies JSONSchemaProps;

export const dropTailSpecSchema = {
  type: 'object',
  description: 'Which nodes to watch, where drops are logged and how they are reported.',
  properties: {
    nodeSelector: { ...stringMapSchema, description: 'Nodes to run on; all nodes when unset.' },
    sources: {
      type: 'array',
      minItems: 1,
      maxItems: 16,
      'x-kubernetes-list-type': 'atomic',
      default: [{ type: 'nflog', group: 100 }],
      description: 'Where drop lines are read from.',
      items: dropSourceSchema,
    },
    prefixes: {
      type: 'array',
      maxItems: 32,
      'x-kubernetes-list-type': 'set',
      default: [...DEFAULT_PREFIXES],
      description: 'Log prefixes that mark a line as a dropped packet.',
      items: { type: 'string', minLength: 1, maxLength: 64 },
    },
    eventReason: { type: 'string', default: 'PacketDrop', minLength: 1, maxLength: 128, pattern: '^[A-Z][A-Za-z0-9]*$', description: 'Reason of the Events emitted per drop.' },
    reportingComponent: { type: 'string', default: 'netwarden', minLength: 1, maxLength: 128, description: 'reportingComponent of the emitted Events.' },
    repeatInterval: { ...durationSchema('Repeats of the same drop within this interval only bump the Event count.'), default: '2m' },
    expiration: { ...durationSchema('How long a drop is remembered for de-duplication and recentDrops.'), default: '10m' },
    reverseDNS: { type: 'boolean', default: true, description: 'Resolve addresses outside the cluster through reverse DNS.' },
    metrics: { type: 'boolean', default: true, description: 'Export Prometheus drop counters.' },
    recentDropsLimit: { type: 'integer', default: 20, minimum: 0, maximum: 200, description: 'How many drops status.recentDrops keeps.' },
  },
  'x-kubernetes-validations': [
    {
      rule: '!has(self.expiration) || !has(self.repeatInterval) || duration(self.expiration) >= duration(self.repeatInterval)',
      message: 'expiration must not be shorter than repeatInterval',
      fieldPath: '.expiration',
    },
  ],
} as const satisfies JSONSchemaProps;

/** One end of a dropped packet, resolved to a Kubernetes object where possible. */
export const dropEndpointSchema = {
  type: 'object',
  required: ['ip'],
  properties: {
    ip: { type: 'string', maxLength: 64 },
    kind: { type: 'string', enum: ['Pod', 'Node', 'Service', 'External', 'Unknown'] },
    namespace: { type: 'string', maxLength: 63 },
    name: { type: 'string', maxLength: 253 },
  },
} as const satisfies JSONSchemaProps;

const portSchema = { type: 'integer', minimum: 0, maximum: 65535 } as const;

/** One dropped packet (or several identical ones, counted). */
export const dropRecordSchema = {
  type: 'object',
  required: ['time', 'node'],
  properties: {
    time: dateTimeSchema,
    node: { type: 'string', maxLength: 253 },
    protocol: { type: 'string', maxLength: 16, description: 'TCP, UDP, ICMP, ... or the IP protocol number.' },
    src: dropEndpointSchema,
    dst: dropEndpointSchema,
    srcPort: portSchema,
    dstPort: portSchema,
    direction: { type: 'string', enum: ['ingress', 'egress', 'forward'] },
    count: { type: 'integer', minimum: 1 },
    prefix: { type: 'string', maxLength: 64 },
    reason: { type: 'string', maxLength: 64, description: "The kernel's drop reason (kernel sources), e.g. NETFILTER_DROP." },
  },
} as const satisfies JSONSchemaProps;

export const dropTailStatusSchema = {
  type: 'object',
  properties: {
    observedGeneration: observedGenerationSchema,
    conditions: conditionsSchema,
    ...nodeSummaryProperties,
    totalDrops: { type: 'integer', minimum: 0, description: 'Drops the controller counted (duplicates and expired drops left out).' },
    dropsSeen: { type: 'integer', format: 'int64', minimum: 0, description: "The sum of the reporting agents' drops read since each started." },
    gaps: { type: 'integer', format: 'int64', minimum: 0, description: "The sum of the reporting agents' gaps: times a source skipped lines (a rotated log file deleted before it was read to its end)." },
    eventsSuppressed: {
      type: 'integer',
      format: 'int64',
      minimum: 0,
      description: "Drop Events on Pods the controller did not write because they were over its event budget (--event-qps/--event-burst, per Pod --event-pod-qps/--event-pod-burst); each is counted in its Pod's aggregated Event, \"(combined from similar events): ...\".",
    },
    lastDropTime: dateTimeSchema,
    lastDrop: dropRecordSchema,
    recentDrops: { type: 'array', maxItems: 200, 'x-kubernetes-list-type': 'atomic', items: dropRecordSchema, description: 'The newest drops, newest first.' },
  },
} as const satisfies JSONSchemaProps;

export const dropTailSchema = rootSchema('DropTail reports packets the nodes drop as Events, metrics and status.', dropTailSpecSchema, dropTailStatusSchema);

export type DropSource = FromSchema<typeof dropSourceSchema>;
export type DropEndpoint = FromSchema<typeof dropEndpointSchema>;
export type DropRecord = FromSchema<typeof dropRecordSchema>;
export type DropTailSpec = FromSchema<typeof dropTailSpecSchema>;
export type DropTailSpecInput = FromSchema<typeof dropTailSpecSchema, 'input'>;
export type DropTailStatus = FromSchema<typeof dropTailStatusSchema>;
export type DropTail = NetwardenObject<'DropTail', DropTailSpec, DropTailStatus>;
/** A DropTail as a user writes it: defaulted fields may be left out. */
export type DropTailInput = NetwardenObject<'DropTail', DropTailSpecInput, DropTailStatus>;

export const dropTailCrd: CrdDefinition = {
  type: DropTailType,
  singular: 'droptail',
  shortNames: ['dt'],
  categories: [CATEGORY],
  printerColumns: [
    { name: 'Nodes', type: 'integer', jsonPath: '.status.nodeCount', description: 'Nodes whose agents report.' },
    unhealthyColumn,
    { name: 'Drops', type: 'integer', jsonPath: '.status.totalDrops', description: 'Drops seen on all nodes.' },
    { name: 'Last Drop', type: 'date', jsonPath: '.status.lastDropTime' },
    readyColumn,
    ageColumn,
  ],
  schema: dropTailSchema,
};

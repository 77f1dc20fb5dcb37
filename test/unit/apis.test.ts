// The API of the three kinds: the committed CRDs are what the schemas render, the schemas are
// structural, and the offline validator reports what a user would see from the API server.

import { expect } from 'chai';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Environment } from '@marcbachmann/cel-js';
import { parseAllDocuments } from 'yaml';
import {
  CRD_DEFINITIONS,
  DEFAULT_PREFIXES,
  auditForwarderCrd,
  conditionSchema,
  crdFileName,
  dropTailCrd,
  packetCaptureCrd,
  renderCrd,
  renderCrdYaml,
  ADMISSION_POLICIES,
  renderAdmissionYaml,
  validateAndDefault,
  validateObject,
  withDefaults,
  type AuditForwarder,
  type AuditForwarderInput,
  type Condition,
  type DropTail,
  type Equal,
  type FromSchema,
  type JSONSchemaProps,
  type PacketCapture,
  type PacketCaptureInput,
  type ValidationError,
} from '../../src/apis/index.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function loadYaml(path: string): unknown[] {
  return parseAllDocuments(readFileSync(join(repo, path), 'utf8') as string)
    .map((d) => d.toJS() as unknown)
    .filter((v) => v !== null);
}

function loadOne(path: string): unknown {
  const [obj] = loadYaml(path);
  return obj;
}

/** Every schema node with where it is, for structural checks. */
function* schemaNodes(s: JSONSchemaProps, path = ''): Generator<[string, JSONSchemaProps]> {
  yield [path, s];
  for (const [k, v] of Object.entries(s.properties ?? {})) yield* schemaNodes(v, `${path}.${k}`);
  if (s.items) yield* schemaNodes(s.items, `${path}[*]`);
  if (s.additionalProperties) yield* schemaNodes(s.additionalProperties, `${path}[*]`);
}

const pc = (spec: Record<string, unknown>): Record<string, unknown> => ({
  apiVersion: 'netwarden.io/v1alpha1',
  kind: 'PacketCapture',
  metadata: { name: 'pc', namespace: 'default' },
  spec,
});
const af = (spec: Record<string, unknown>): Record<string, unknown> => ({ apiVersion: 'netwarden.io/v1alpha1', kind: 'AuditForwarder', metadata: { name: 'af' }, spec });
const dt = (spec: Record<string, unknown>): Record<string, unknown> => ({ apiVersion: 'netwarden.io/v1alpha1', kind: 'DropTail', metadata: { name: 'dt' }, spec });

describe('apis: CRDs', () => {
  for (const policy of ADMISSION_POLICIES) {
    it(`config/admission/${policy.name}.yaml is what npm run gen:crds renders`, () => {
      const committed = readFileSync(join(repo, 'config', 'admission', `${policy.name}.yaml`), 'utf8');
      expect(committed, 'config/admission/ is stale: run npm run gen:crds').to.equal(renderAdmissionYaml(policy));
    });
  }

  for (const def of CRD_DEFINITIONS) {
    it(`crds/${crdFileName(def)} is what npm run gen:crds renders`, () => {
      const committed = readFileSync(join(repo, 'crds', crdFileName(def)), 'utf8');
      expect(committed, 'crds/ is stale: run npm run gen:crds').to.equal(renderCrdYaml(def));
    });

    it(`${def.type.kind} has a structural schema`, () => {
      for (const [path, node] of schemaNodes(def.schema)) {
        expect(node.type !== undefined || node['x-kubernetes-int-or-string'], `${path} has no type`).to.be.ok;
        if (node['x-kubernetes-list-type'] === 'map') {
          for (const key of node['x-kubernetes-list-map-keys'] ?? []) expect(node.items?.required, `${path} map key ${key}`).to.include(key);
        }
      }
    });

    it(`${def.type.kind}'s CEL rules all parse`, () => {
      const cel = new Environment({ unlistedVariablesAreDyn: true, homogeneousAggregateLiterals: false });
      for (const [path, node] of schemaNodes(def.schema)) {
        for (const rule of node['x-kubernetes-validations'] ?? []) expect(() => cel.parse(rule.rule), `${path}: ${rule.rule}`).not.to.throw();
      }
    });

    it(`${def.type.kind}'s printer columns point at schema fields`, () => {
      const fields = new Set([...schemaNodes(def.schema)].map(([p]) => p));
      for (const col of def.printerColumns) {
        if (col.jsonPath === '.metadata.creationTimestamp') continue;
        const field = col.jsonPath.replace(/\[\?.*$/, '');
        expect(fields, `${col.name}: ${col.jsonPath}`).to.include(field);
      }
    });
  }

  it('names, scope, short names and category follow the design', () => {
    const summary = CRD_DEFINITIONS.map((d) => {
      const spec = renderCrd(d).spec as { scope: string; names: { shortNames: string[]; categories: string[] } };
      return [d.type.plural, spec.scope, spec.names.shortNames.join(','), spec.names.categories.join(',')];
    });
    expect(summary).to.deep.equal([
      ['droptails', 'Cluster', 'dt', 'netwarden'],
      ['packetcaptures', 'Namespaced', 'pcap', 'netwarden'],
      ['auditforwarders', 'Cluster', 'af', 'netwarden'],
    ]);
  });

  it('printer columns are the documented ones', () => {
    const names = (cols: readonly { name: string }[]) => cols.map((c) => c.name.toUpperCase());
    expect(names(dropTailCrd.printerColumns)).to.deep.equal(['NODES', 'UNHEALTHY', 'DROPS', 'LAST DROP', 'READY', 'AGE']);
    expect(names(packetCaptureCrd.printerColumns)).to.deep.equal(['PHASE', 'PODS', 'FILES', 'SIZE', 'EXPIRES', 'AGE']);
    expect(names(auditForwarderCrd.printerColumns)).to.deep.equal(['NODES', 'UNHEALTHY', 'SHIPPED', 'LAG', 'READY', 'AGE']);
  });
});

describe('apis: types derived from the schemas', () => {
  it('status.conditions entries are exactly metav1.Condition', () => {
    const agrees: Equal<FromSchema<typeof conditionSchema>, Condition> = true;
    expect(agrees).to.equal(true);
  });

  it('a user-written object needs no defaulted field, and reads back with all of them', () => {
    const input: PacketCaptureInput = { apiVersion: 'netwarden.io/v1alpha1', kind: 'PacketCapture', metadata: { name: 'x', namespace: 'y' }, spec: {} };
    const stored: PacketCapture = withDefaults(input);
    const snapLen: number = stored.spec.snapLen;
    expect(snapLen).to.equal(262144);
    const fwd: AuditForwarderInput = { apiVersion: 'netwarden.io/v1alpha1', kind: 'AuditForwarder', metadata: { name: 'x' }, spec: { sink: { file: { directory: '/a' } } } };
    const maxWait: string = withDefaults(fwd).spec.batch.maxWait;
    expect(maxWait).to.equal('60s');
  });
});

describe('apis: defaults', () => {
  it('an empty DropTail gets the documented defaults', () => {
    const obj = withDefaults({ apiVersion: 'netwarden.io/v1alpha1', kind: 'DropTail', metadata: { name: 'x' } }) as DropTail;
    expect(obj.spec).to.deep.equal({
      sources: [{ type: 'nflog', group: 100 }],
      prefixes: [...DEFAULT_PREFIXES],
      eventReason: 'PacketDrop',
      reportingComponent: 'netwarden',
      repeatInterval: '2m',
      expiration: '10m',
      reverseDNS: true,
      metrics: true,
      recentDropsLimit: 20,
    });
  });

  it('an empty PacketCapture captures all() in both directions with bounded files, in pcap (Calico\'s format)', () => {
    const obj = withDefaults(pc({})) as PacketCapture;
    expect(obj.spec).to.deep.equal({ selector: 'all()', direction: 'both', fileSizeBytes: 10 * 1024 * 1024, maxFiles: 10, snapLen: 262144, includeMetadata: false, format: 'pcap' });
  });

  it('an AuditForwarder with only a sink reads the control-plane audit log and drops nothing', () => {
    const obj = withDefaults(af({ sink: { webhook: { url: 'https://collector.example/ingest' } } })) as AuditForwarder;
    expect(obj.spec).to.deep.equal({
      sink: { webhook: { url: 'https://collector.example/ingest', format: 'eventList', gzip: false } },
      nodeSelector: { 'node-role.kubernetes.io/control-plane': '' },
      source: { path: '/var/log/kubernetes/audit/audit.log' },
      clusterID: 'default_cluster',
      batch: { maxBytes: 52428800, maxWait: '60s' },
      filter: { rules: [] },
    });
  });

  it('does not change the object it is given', () => {
    const input = dt({});
    withDefaults(input);
    expect(input.spec).to.deep.equal({});
  });
});

describe('apis: validation', () => {
  for (const file of readdirSync(join(repo, 'examples')).filter((f) => f.endsWith('.yaml'))) {
    it(`examples/${file} is valid`, () => {
      for (const obj of loadYaml(join('examples', file))) expect(validateObject(obj)).to.deep.equal([]);
    });
  }

  it('accepts Calico PacketCapture samples with only the apiVersion changed', () => {
    const samples = [
      { selector: 'k8s-app == "sample-app"', filters: [{ protocol: 'TCP', ports: [80] }] },
      { selector: 'all()', startTime: '2021-08-26T12:00:00Z', endTime: '2021-08-26T12:30:00Z' },
      { selector: 'all()', filters: [{ protocol: 6, ports: ['8080:8090', 443] }, { protocol: 'ICMPv6' }, { protocol: 1 }] },
    ];
    for (const spec of samples) expect(validateObject(pc(spec)), JSON.stringify(spec)).to.deep.equal([]);
  });

  const fixtures: Record<string, ValidationError[]> = {
    'packetcapture-endtime-before-starttime.yaml': [{ path: 'spec.endTime', message: 'endTime must be after startTime' }],
    'packetcapture-bad-protocol.yaml': [
      { path: 'spec.filters[0].protocol', message: `Invalid value: "HTTP": should match '^(TCP|UDP|ICMP|ICMPv6|SCTP|UDPLite)$'` },
      { path: 'spec.filters[1].protocol', message: 'Invalid value: 300: should be less than or equal to 255' },
      { path: 'spec.filters[2].ports[2]', message: 'Invalid value: 99999: should be less than or equal to 65535' },
      { path: 'spec.filters[2].ports[1]', message: 'a port range must be "low:high" with 1 <= low <= high <= 65535' },
    ],
    'auditforwarder-two-sinks.yaml': [{ path: 'spec.sink', message: 'exactly one of webhook, s3 or file must be set' }],
    'droptail-bad-sources.yaml': [
      { path: 'spec.sources[2].type', message: 'Unsupported value: "pcap": supported values: "nflog", "journal", "file", "kernel"' },
      { path: 'spec.recentDropsLimit', message: 'Invalid value: 500: should be less than or equal to 200' },
      { path: 'spec.sources[0].group', message: 'group must be set for nflog sources and only for them' },
      { path: 'spec.sources[1].path', message: 'path must be set for file sources and only for them' },
    ],
  };
  for (const [file, expected] of Object.entries(fixtures)) {
    it(`test/fixtures/invalid/${file} fails with the expected errors`, () => {
      expect(validateObject(loadOne(join('test/fixtures/invalid', file)))).to.deep.equal(expected);
    });
  }

  it('every invalid fixture is covered above', () => {
    expect(readdirSync(join(repo, 'test/fixtures/invalid')).sort()).to.deep.equal(Object.keys(fixtures).sort());
  });

  it('PacketCapture: podSelector excludes a non-default selector, duration excludes endTime', () => {
    expect(validateObject(pc({ selector: 'app == "a"', podSelector: { matchLabels: { app: 'a' } }, endTime: '2030-01-01T00:00:00Z', duration: '5m' }))).to.deep.equal([
      { path: 'spec.duration', message: 'duration and endTime are mutually exclusive' },
      { path: 'spec.podSelector', message: 'podSelector and a selector other than all() are mutually exclusive' },
    ]);
    expect(validateObject(pc({ podSelector: { matchLabels: { app: 'a' } }, duration: '1h30m', maxBytesPerPod: 1000 }))).to.deep.equal([]);
  });

  it('PacketCapture: ports need a protocol that has ports; durations and times are checked', () => {
    expect(validateObject(pc({ filters: [{ protocol: 'ICMP', ports: [1] }], duration: '5 minutes', startTime: 'tomorrow' }))).to.deep.equal([
      { path: 'spec.startTime', message: 'Invalid value: "tomorrow": must be a valid date-time' },
      { path: 'spec.duration', message: `Invalid value: "5 minutes": should match '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$'` },
      { path: 'spec.filters[0].ports', message: 'ports are only valid with protocol TCP, UDP, SCTP or UDPLite (or no protocol)' },
    ]);
    expect(validateObject(pc({ filters: [{ ports: [53, true] }] }))).to.deep.equal([{ path: 'spec.filters[0].ports[1]', message: 'Invalid value: true: must be an integer or a string' }]);
  });

  it('AuditForwarder: needs a sink, http(s) URLs and a known filter action', () => {
    expect(validateObject(af({}))).to.deep.equal([{ path: 'spec.sink', message: 'Required value' }]);
    expect(validateObject(af({ sink: { webhook: { url: 'ftp://x.example/' } }, filter: { rules: [{ action: 'allow' }] } }))).to.deep.equal([
      { path: 'spec.filter.rules[0].action', message: 'Unsupported value: "allow": supported values: "drop", "keep"' },
      { path: 'spec.sink.webhook.url', message: `Invalid value: "ftp://x.example/": should match '^https?://'` },
    ]);
    expect(validateObject(af({ sink: {} }))).to.deep.equal([{ path: 'spec.sink', message: 'exactly one of webhook, s3 or file must be set' }]);
  });

  it('DropTail: unknown fields, wrong types and expiration shorter than repeatInterval', () => {
    expect(validateObject(dt({ reverseDns: true, metrics: 'yes', repeatInterval: '20m' }))).to.deep.equal([
      { path: 'spec.reverseDns', message: 'unknown field' },
      { path: 'spec.metrics', message: 'Invalid value: "yes": must be of type boolean, not string' },
      { path: 'spec.expiration', message: 'expiration must not be shorter than repeatInterval' },
    ]);
  });

  it('status: no per-node list any more, and at most 10 problems', () => {
    const problem = { node: 'a', time: '2026-12-02T08:00:00Z', message: 'nflog source unhealthy' };
    const obj = { ...dt({}), status: { nodes: [{ node: 'a' }], problems: Array.from({ length: 11 }, () => problem), conditions: [{ type: 'Ready', status: 'Maybe' }] } };
    expect(validateObject(obj)).to.deep.equal([
      { path: 'status.nodes', message: 'unknown field' },
      { path: 'status.conditions[0].reason', message: 'Required value' },
      { path: 'status.conditions[0].message', message: 'Required value' },
      { path: 'status.conditions[0].lastTransitionTime', message: 'Required value' },
      { path: 'status.conditions[0].status', message: 'Unsupported value: "Maybe": supported values: "True", "False", "Unknown"' },
      { path: 'status.problems', message: 'Too many: 11: must have at most 10 items' },
    ]);
  });

  it('dispatches by apiVersion and kind, passing other kinds over', () => {
    expect(validateObject({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' }, data: { a: 1 } })).to.deep.equal([]);
    expect(validateObject({ apiVersion: 'netwarden.io/v1', kind: 'DropTail', metadata: { name: 'x' } })).to.deep.equal([
      { path: 'apiVersion', message: 'Unsupported value: "netwarden.io/v1": supported values: "netwarden.io/v1alpha1"' },
    ]);
    expect(validateObject({ apiVersion: 'netwarden.io/v1alpha1', kind: 'DropTrail', metadata: { name: 'x' } })).to.deep.equal([
      { path: 'kind', message: 'Unsupported value: "DropTrail": supported values: "DropTail", "PacketCapture", "AuditForwarder"' },
    ]);
    expect(validateObject({ apiVersion: 'netwarden.io/v1alpha1', kind: 'DropTail', metadata: {} })).to.deep.equal([
      { path: 'metadata.name', message: 'Required value: name or generateName is required' },
    ]);
    expect(validateObject('DropTail')).to.deep.equal([{ path: '', message: 'must be an object' }]);
  });

  it('returns the defaulted object alongside the errors', () => {
    const { object, errors } = validateAndDefault(pc({ snapLen: 10 }));
    expect(errors).to.deep.equal([{ path: 'spec.snapLen', message: 'Invalid value: 10: should be greater than or equal to 64' }]);
    expect((object as PacketCapture).spec.maxFiles).to.equal(10);
  });
});

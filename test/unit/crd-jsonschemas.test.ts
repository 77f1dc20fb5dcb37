// The CRDs' JSON schemas for kubeconform and the CRDs-catalog (schemas/<group>/<kind>_<version>.json):
// committed files are what npm run gen:crds renders, and they judge the examples the way kubeconform
// would: unknown fields below the root refused, enums, types, patterns and date-time formats checked,
// x-kubernetes-* extensions and CEL rules ignored.
import { expect } from 'chai';
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { parseAllDocuments, stringify } from 'yaml';
import { allCrdJsonSchemas, renderJsonSchema } from '../../hack/crd-jsonschema.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

/** kubeconform's -schema-location template for the catalog: {{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json. */
function schemaPathFor(obj: { apiVersion: string; kind: string }): string {
  const [group, version] = obj.apiVersion.split('/');
  return join(repo, 'schemas', group ?? '', `${obj.kind.toLowerCase()}_${version ?? ''}.json`);
}

// kubeconform's JSON Schema library ignores keywords it does not know (x-kubernetes-*) and the
// OpenAPI formats without a JSON Schema meaning (int64, byte), and checks date-time and uri.
const ajv = addFormats(new Ajv({ strict: false, allErrors: true, formats: { int32: true, int64: true, byte: true } }));
const compiled = new Map<string, ValidateFunction>();
function kubeconform(obj: { apiVersion: string; kind: string; [field: string]: unknown }): string[] {
  const path = schemaPathFor(obj);
  let validate = compiled.get(path);
  if (!validate) {
    validate = ajv.compile(JSON.parse(readFileSync(path, 'utf8')) as object);
    compiled.set(path, validate);
  }
  return validate(obj) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message ?? ''}`);
}

function loadYaml(path: string): Array<{ apiVersion: string; kind: string; spec?: Record<string, unknown> }> {
  return parseAllDocuments(readFileSync(path, 'utf8'))
    .map((d) => d.toJS() as { apiVersion: string; kind: string })
    .filter((v) => v !== null);
}

describe('CRD JSON schemas (kubeconform, CRDs-catalog)', () => {
  for (const file of allCrdJsonSchemas()) {
    it(`${file.path} is what npm run gen:crds renders`, () => {
      const committed = readFileSync(join(repo, file.path), 'utf8');
      expect(committed, 'schemas/ is stale: run npm run gen:crds').to.equal(renderJsonSchema(file));
    });
  }

  it('has one schema per kind, in the catalog layout', () => {
    expect(allCrdJsonSchemas().map((f) => f.path)).to.deep.equal([
      'schemas/netwarden.io/droptail_v1alpha1.json',
      'schemas/netwarden.io/packetcapture_v1alpha1.json',
      'schemas/netwarden.io/auditforwarder_v1alpha1.json',
    ]);
  });

  const examples = readdirSync(join(repo, 'examples')).filter((f) => f.endsWith('.yaml'));
  for (const file of examples) {
    it(`accepts examples/${file}`, () => {
      const objs = loadYaml(join(repo, 'examples', file));
      expect(objs).to.not.be.empty;
      for (const obj of objs) expect(kubeconform(obj), `${obj.kind}`).to.deep.equal([]);
    });
  }

  it('refuses a misspelled field, a value outside an enum and a time that is not one, naming where', () => {
    const [dropTail] = loadYaml(join(repo, 'examples', 'droptail.yaml'));
    expect(kubeconform({ ...dropTail!, spec: { ...dropTail!.spec, recentDropLimit: 5 } })).to.deep.equal(['/spec must NOT have additional properties']);
    const [capture] = loadYaml(join(repo, 'examples', 'packetcapture-storefront-logging-dns.yaml'));
    expect(kubeconform({ ...capture!, spec: { ...capture!.spec, direction: 'sideways', startTime: 'tomorrow' } })).to.have.members([
      '/spec/direction must be equal to one of the allowed values',
      '/spec/startTime must match format "date-time"',
    ]);
    const [forwarder] = loadYaml(join(repo, 'examples', 'auditforwarder-webhook.yaml'));
    const sink = forwarder!.spec!.sink as { webhook: Record<string, unknown> };
    expect(kubeconform({ ...forwarder!, spec: { ...forwarder!.spec, sink: { webhook: { ...sink.webhook, gzip: 'yes' } } } })).to.deep.equal(['/spec/sink/webhook/gzip must be boolean']);
  });

  it('like kubeconform, leaves CEL rules to the API server: mutually exclusive fields pass here', () => {
    const [capture] = loadYaml(join(repo, 'examples', 'packetcapture-storefront-logging-dns.yaml'));
    expect(kubeconform({ ...capture!, spec: { ...capture!.spec, endTime: '2026-12-02T10:00:00Z' } })).to.deep.equal([]);
  });

  describe('with kubeconform itself (built from its Go module by hack/kubeconform/build.sh)', () => {
    const LOCATION = 'schemas/{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json';
    interface Result { kind: string; name: string; status: string; validationErrors?: Array<{ path: string; msg: string }> }
    function kubeconformBin(): string {
      return process.env.NETWARDEN_KUBECONFORM ?? execFileSync('bash', [join(repo, 'hack/kubeconform/build.sh')], { encoding: 'utf8' }).trim();
    }
    function runKubeconform(args: string[], input?: string): { code: number | null; resources: Result[] } {
      const r = spawnSync(kubeconformBin(), ['-strict', '-verbose', '-output', 'json', '-schema-location', LOCATION, ...args], { cwd: repo, input, encoding: 'utf8', timeout: 30_000 });
      return { code: r.status, resources: (JSON.parse(r.stdout) as { resources: Result[] }).resources };
    }

    it('finds every example valid', function () {
      this.timeout(60_000);
      const { code, resources } = runKubeconform(examples.map((f) => join('examples', f)));
      expect(resources.map((r) => `${r.kind} ${r.status}`).sort()).to.deep.equal(['AuditForwarder statusValid', 'DropTail statusValid', 'DropTail statusValid', 'PacketCapture statusValid', 'PacketCapture statusValid', 'PacketCapture statusValid']);
      expect(code).to.equal(0);
    });

    it('refuses what the ajv check above refuses, at the same paths', function () {
      this.timeout(60_000);
      const [dropTail] = loadYaml(join(repo, 'examples', 'droptail.yaml'));
      const [capture] = loadYaml(join(repo, 'examples', 'packetcapture-storefront-logging-dns.yaml'));
      const bad = [
        { ...dropTail!, spec: { ...dropTail!.spec, recentDropLimit: 5 } },
        { ...capture!, spec: { ...capture!.spec, direction: 'sideways', startTime: 'tomorrow', format: 'pcapx' } },
      ];
      const { code, resources } = runKubeconform(['-'], bad.map((o) => stringify(o)).join('---\n'));
      expect(code).to.equal(1);
      expect(resources.sort((a, b) => a.kind.localeCompare(b.kind)).map((r) => [r.kind, r.status, (r.validationErrors ?? []).map((e) => `${e.path}: ${e.msg}`).sort()])).to.deep.equal([
        ['DropTail', 'statusInvalid', ["/spec: additional properties 'recentDropLimit' not allowed"]],
        ['PacketCapture', 'statusInvalid', ["/spec/direction: value must be one of 'ingress', 'egress', 'both'", "/spec/format: value must be one of 'pcap', 'pcapng'", "/spec/startTime: 'tomorrow' is not valid date-time: less than 20 characters long"]],
      ]);
    });
  });
});

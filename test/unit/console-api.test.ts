// What the console's Captures page is given for one PacketCapture: the columns of `kubectl get
// pcap`, each node's state, and any status field this version does not know (another branch's
// retention or export fields), passed on to be shown as they are rather than dropped.
import { expect } from 'chai';
import { captureView } from '../../src/plugin/ui/api.js';
import type { PacketCapture } from '../../src/apis/packetcapture.js';
import { validateAndDefault } from '../../src/apis/validate.js';
import YAML from 'yaml';
import { captureYaml, DEFAULT_FORM } from '../../ui/src/captureyaml.js';

function capture(status: Record<string, unknown>): PacketCapture {
  return {
    apiVersion: 'netwarden.io/v1alpha1',
    kind: 'PacketCapture',
    metadata: { name: 'pc-a', namespace: 'shop', creationTimestamp: '2026-12-03T07:00:00Z' as unknown as Date },
    spec: { selector: 'all()' },
    status,
  } as unknown as PacketCapture;
}

describe('console API: the capture view', function () {
  it('gives phase, pods, files and size, and whether the capture has ended', function () {
    const v = captureView(capture({
      phase: 'Capturing', podCount: 2, fileCount: 3, totalBytes: 4096,
      targets: [{ pod: 'web-1', node: 'n1', ip: '10.0.0.1' }, { pod: 'web-2', node: 'n2', ip: '10.0.0.2' }],
      files: [{ node: 'n1', state: 'Capturing', bytes: 4000, packets: 9, fileNames: ['web-1_cali1_00001.pcap'] }],
      conditions: [{ type: 'Ready', status: 'True', reason: 'Capturing', message: '2 pod(s) selected', lastTransitionTime: '2026-12-03T07:00:01Z' }],
    }));
    expect(v).to.deep.include({ name: 'pc-a', namespace: 'shop', created: '2026-12-03T07:00:00Z', phase: 'Capturing', podCount: 2, fileCount: 3, totalBytes: 4096, ended: false, message: '2 pod(s) selected' });
    expect(v.pods.map((p) => p.pod)).to.deep.equal(['web-1', 'web-2']);
    expect(v.files[0]).to.deep.include({ node: 'n1', state: 'Capturing', packets: 9 });
    expect(v.extraStatus).to.deep.equal({});
    for (const phase of ['Finished', 'Stopped', 'Failed']) expect(captureView(capture({ phase })).ended, phase).to.equal(true);
    expect(captureView(capture({})).phase).to.equal('Pending');
  });

  it('passes on status fields it does not know, so a newer controller\'s expiry or uploads still show', function () {
    const v = captureView(capture({ phase: 'Finished', filesExpireAt: '2026-12-04T07:00:00Z', uploads: [{ key: 'p/n1.pcap', bytes: 10 }] }));
    expect(v.extraStatus).to.deep.equal({ filesExpireAt: '2026-12-04T07:00:00Z', uploads: [{ key: 'p/n1.pcap', bytes: 10 }] });
  });
});

describe('console: the create form\'s YAML', function () {
  const form = { ...DEFAULT_FORM, name: 'pc-web', protocol: 'UDP', ports: '53, 8000:8080', duration: '5m' };
  const parsed = (yaml: string) => YAML.parse(yaml) as { spec: Record<string, unknown> };

  it('leaves the defaults out, as a user writing it would, and the API server schema accepts it', function () {
    const yaml = captureYaml('shop', form);
    expect(parsed(yaml).spec).to.deep.equal({ selector: 'all()', filters: [{ protocol: 'UDP', ports: [53, '8000:8080'] }], direction: 'both', duration: '5m', maxBytesPerPod: 100 * 1024 * 1024 });
    expect(validateAndDefault(YAML.parse(yaml)).errors).to.deep.equal([]);
  });

  it('asks for pcapng and a retention time when chosen, in fields the CRD knows', function () {
    const yaml = captureYaml('shop', { ...form, format: 'pcapng', ttlSeconds: '3600' });
    expect(parsed(yaml).spec).to.include({ format: 'pcapng', ttlSecondsAfterFinished: 3600 });
    const checked = validateAndDefault(YAML.parse(yaml));
    expect(checked.errors).to.deep.equal([]);
    // Not a typo the schema would prune: the stored object keeps them.
    expect((checked.object as { spec: Record<string, unknown> }).spec).to.include({ format: 'pcapng', ttlSecondsAfterFinished: 3600 });
  });
});

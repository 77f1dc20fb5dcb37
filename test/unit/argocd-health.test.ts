// The Argo CD health checks in config/argocd/, in Argo CD's own test layout: every case of each
// kind's health_test.yaml (objects the e2e test read from the real controller, see
// test/e2e/argocd-health.test.ts) gives its status and message under Lua 5.1 (gopher-lua's dialect)
// and 5.4; the objects are valid for the CRDs; the argocd-cm patch carries the same scripts.
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { validateObject } from '../../src/apis/validate.js';
import { ARGOCD_CM_PATCH, renderArgocdCmPatch } from '../../hack/argocd-cm.js';
import { ARGOCD_KINDS, LUA_VERSIONS, REPO, argoHealth, healthScript } from '../env/argocd.js';

interface HealthTest {
  healthStatus: { status: string; message?: string };
  inputPath: string;
}

describe('Argo CD health checks (config/argocd)', () => {
  for (const kind of ARGOCD_KINDS) {
    const dir = path.dirname(healthScript(kind));
    const { tests } = parse(readFileSync(path.join(dir, 'health_test.yaml'), 'utf8')) as { tests: HealthTest[] };

    it(`${kind}: health_test.yaml covers Healthy, Progressing and Degraded`, () => {
      expect(new Set(tests.map((t) => t.healthStatus.status))).to.include.members(['Healthy', 'Progressing', 'Degraded']);
    });

    for (const t of tests) {
      const obj = parse(readFileSync(path.join(dir, t.inputPath), 'utf8')) as unknown;
      it(`${kind} ${t.inputPath}: ${t.healthStatus.status}`, () => {
        expect(validateObject(obj), 'a valid object').to.deep.equal([]);
        for (const lua of LUA_VERSIONS) expect(argoHealth(kind, obj, lua), lua).to.deep.equal(t.healthStatus);
      });
    }

    it(`${kind}: an object without metadata or status does not break the script`, () => {
      expect(argoHealth(kind, { apiVersion: 'netwarden.io/v1alpha1', kind })).to.deep.equal({ status: 'Progressing', message: 'Waiting for the Netwarden controller to observe generation 0' });
    });
  }

  it('PacketCapture: Suspended while some nodes are held by a node quota, even as others capture', () => {
    // The phase the controller keeps when some nodes capture and others wait for room.
    const obj = {
      metadata: { generation: 1 },
      status: { observedGeneration: 1, phase: 'Capturing', conditions: [{ type: 'Ready', status: 'False', reason: 'QuotaExceeded', message: 'node n2: pod web: node quota' }] },
    };
    expect(argoHealth('PacketCapture', obj)).to.deep.equal({ status: 'Suspended', message: 'Capturing, held by a capture quota: node n2: pod web: node quota' });
  });

  it('the scripts only use what Argo CD offers a health script: no io, os or require', () => {
    for (const kind of ARGOCD_KINDS) expect(readFileSync(healthScript(kind), 'utf8')).to.not.match(/\b(io|os|require|package|debug)\s*[.(]/);
  });

  it(`${ARGOCD_CM_PATCH} is what npm run gen:crds renders from the .lua files`, () => {
    expect(readFileSync(path.join(REPO, ARGOCD_CM_PATCH), 'utf8'), 'run npm run gen:crds').to.equal(renderArgocdCmPatch(REPO));
  });
});

// What no AuditForwarder can make an agent do: read Secrets outside Netwarden's namespace, send over
// http:// unasked, or read a file outside its audit log directories, also through symlinks. The
// agent's rules (no CEL) must agree with the admission policy's CEL on the same objects.
import { expect } from 'chai';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { admissionViolations } from '../../src/apis/admission.js';
import type { AuditForwarderSpec } from '../../src/apis/auditforwarder.js';
import { auditForwarderRefusal, DEFAULT_AUDIT_LOG_DIR, SYSTEM_NAMESPACE } from '../../src/apis/limits.js';
import { withDefaults } from '../../src/apis/validate.js';
import { sourcePathRefusal } from '../../src/nodeagent/audit/confine.js';

const LIMITS = { namespace: SYSTEM_NAMESPACE, auditLogDirs: [DEFAULT_AUDIT_LOG_DIR] };
const hook = (extra: Record<string, unknown> = {}) => ({ webhook: { url: 'https://collector.example/in', ...extra } });

const CASES: Array<[string, Record<string, unknown>, boolean]> = [
  ['defaults with an https webhook', { sink: hook() }, true],
  ['a Secret of netwarden-system', { sink: hook({ bearerTokenSecretRef: { name: 't', key: 'k', namespace: SYSTEM_NAMESPACE } }) }, true],
  ['a Secret with no namespace', { sink: hook({ headersSecretRef: { name: 'h', key: 'k' } }) }, true],
  ['a kube-system bearer token', { sink: hook({ bearerTokenSecretRef: { name: 't', key: 'k', namespace: 'kube-system' } }) }, false],
  ['kube-system headers', { sink: hook({ headersSecretRef: { name: 'h', key: 'k', namespace: 'kube-system' } }) }, false],
  ['kube-system S3 credentials', { sink: { s3: { bucket: 'audit', endpoint: 'https://s3.example', credentialsSecretRef: { name: 'c', namespace: 'kube-system' } } } }, false],
  ['http:// webhook', { sink: { webhook: { url: 'http://collector.example/in' } } }, false],
  ['http:// webhook, allowed', { sink: { webhook: { url: 'http://collector.example/in', allowInsecure: true } } }, true],
  ['http:// S3 endpoint', { sink: { s3: { bucket: 'audit', endpoint: 'http://minio:9000' } } }, false],
  ['http:// S3 endpoint, allowed', { sink: { s3: { bucket: 'audit', endpoint: 'http://minio:9000', allowInsecure: true } } }, true],
  ['AWS S3 (no endpoint)', { sink: { s3: { bucket: 'audit' } } }, true],
  ['the TLS key', { source: { path: '/etc/netwarden/tls/tls.key' }, sink: hook() }, false],
  ['the projected token', { source: { path: '/var/run/secrets/kubernetes.io/serviceaccount/token' }, sink: hook() }, false],
  ['a pod log', { source: { path: '/var/log/pods/team-a_web-1_0/web/0.log' }, sink: hook() }, false],
  ['a climb out with ..', { source: { path: '/var/log/kubernetes/audit/../../pods/x.log' }, sink: hook() }, false],
  ['a doubled slash', { source: { path: '/var/log/kubernetes/audit//audit.log' }, sink: hook() }, false],
  ['a prefix that is not the directory', { source: { path: '/var/log/kubernetes/audit-evil/audit.log' }, sink: hook() }, false],
  ['a subdirectory', { source: { path: '/var/log/kubernetes/audit/cluster-a/audit.log' }, sink: hook() }, true],
];

describe('AuditForwarder limits', () => {
  for (const [what, spec, allowed] of CASES) {
    it(`${allowed ? 'allows' : 'refuses'} ${what}, in the agent and in the admission policy alike`, () => {
      const object = withDefaults({ apiVersion: 'netwarden.io/v1alpha1', kind: 'AuditForwarder', metadata: { name: 'x' }, spec }) as { spec: AuditForwarderSpec };
      const byAgent = auditForwarderRefusal(object.spec, LIMITS);
      const byPolicy = admissionViolations('AuditForwarder', object as unknown as Record<string, unknown>);
      expect(byAgent === undefined, `agent: ${byAgent}`).to.equal(allowed);
      expect(byPolicy.length === 0, `policy: ${byPolicy.join('; ')}`).to.equal(allowed);
    });
  }

  describe('on the filesystem', () => {
    let dir: string;
    let allowed: string;
    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'audit-limits-'));
      allowed = join(dir, 'audit');
      await mkdir(allowed);
      await writeFile(join(dir, 'tls.key'), 'secret\n');
      await writeFile(join(allowed, 'audit.log'), '{}\n');
    });
    afterEach(() => rm(dir, { recursive: true, force: true }));

    it('reads a log file in the directory, and one that does not exist yet', async () => {
      expect(await sourcePathRefusal(join(allowed, 'audit.log'), [allowed])).to.equal(undefined);
      expect(await sourcePathRefusal(join(allowed, 'later.log'), [allowed])).to.equal(undefined);
    });

    it('refuses a symlinked log file that leads out of the directory, naming where it leads', async () => {
      await symlink(join(dir, 'tls.key'), join(allowed, 'key.log'));
      expect(await sourcePathRefusal(join(allowed, 'key.log'), [allowed])).to.match(/outside the directories .*: it is a symbolic link to .*tls\.key$/);
    });

    it('refuses a symlinked subdirectory that leads out', async () => {
      await symlink(dir, join(allowed, 'up'));
      expect(await sourcePathRefusal(join(allowed, 'up', 'tls.key'), [allowed])).to.match(/its directory resolves to /);
    });

    it('refuses any path outside, with the directories it may read', async () => {
      expect(await sourcePathRefusal(join(dir, 'tls.key'), [allowed])).to.equal(
        `spec.source.path ${join(dir, 'tls.key')} is outside the directories this agent reads audit logs from (${allowed}; set with --audit-log-dir)`,
      );
    });
  });
});

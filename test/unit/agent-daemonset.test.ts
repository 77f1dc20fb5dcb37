// What the agent DaemonSet of config/ lets a compromised agent (or a tenant's AuditForwarder
// source.path) reach on the node: the container runs under the runtime's default seccomp profile
// without privilege, and mounts the audit log directory, the journal and its own state directory,
// not all of /var/log (every pod's log is under /var/log/pods) nor the kubelet's secrets.
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { V1Container, V1DaemonSet, V1Volume } from '@kubernetes/client-node';
import YAML from 'yaml';

const MANIFEST = join(dirname(fileURLToPath(import.meta.url)), '../../config/agent/daemonset.yaml');

/** Host directories that hold other tenants' data or the node's credentials. */
const FORBIDDEN = ['/var/log/pods', '/var/log/containers', '/var/lib/kubelet', '/etc/kubernetes', '/var/lib/etcd', '/root'];
/** What the agent reads (read-only) and where it keeps its checkpoints and capture files. */
const ALLOWED_HOST_PATHS = { '/var/log/kubernetes/audit': 'read', '/var/log/journal': 'read', '/run/log/journal': 'read', '/var/lib/netwarden': 'write' } as const;

function daemonSet(): V1DaemonSet {
  return YAML.parse(readFileSync(MANIFEST, 'utf8')) as V1DaemonSet;
}

function containers(ds: V1DaemonSet): V1Container[] {
  const spec = ds.spec!.template.spec!;
  return [...(spec.initContainers ?? []), ...spec.containers];
}

/** a is b or a directory above it. */
function contains(a: string, b: string): boolean {
  const rel = relative(a, b);
  return rel === '' || (!rel.startsWith('..') && !rel.startsWith('/'));
}

describe('agent DaemonSet (config/agent/daemonset.yaml)', function () {
  it('runs every container with seccomp RuntimeDefault, unprivileged, with only NET_ADMIN, NET_RAW, BPF and PERFMON', function () {
    const ds = daemonSet();
    const podProfile = ds.spec!.template.spec!.securityContext?.seccompProfile?.type;
    for (const c of containers(ds)) {
      const sc = c.securityContext ?? {};
      expect(sc.seccompProfile?.type ?? podProfile, `${c.name}: seccompProfile`).to.equal('RuntimeDefault');
      expect(sc.privileged ?? false, `${c.name}: privileged`).to.equal(false);
      expect(sc.allowPrivilegeEscalation, `${c.name}: allowPrivilegeEscalation`).to.equal(false);
      expect(sc.readOnlyRootFilesystem, `${c.name}: readOnlyRootFilesystem`).to.equal(true);
      expect(sc.capabilities?.drop, `${c.name}: capabilities.drop`).to.deep.equal(['ALL']);
      expect([...(sc.capabilities?.add ?? [])].sort(), `${c.name}: capabilities.add`).to.deep.equal(['BPF', 'NET_ADMIN', 'NET_RAW', 'PERFMON']);
    }
  });

  it('mounts the audit log directory and the journal read-only, not /var/log, the pods\' logs or the kubelet\'s secrets', function () {
    const ds = daemonSet();
    const volumes = new Map<string, V1Volume>((ds.spec!.template.spec!.volumes ?? []).map((v) => [v.name, v]));
    const hostPaths = [...volumes.values()].flatMap((v) => (v.hostPath ? [v.hostPath.path] : []));
    expect(hostPaths.sort()).to.deep.equal(Object.keys(ALLOWED_HOST_PATHS).sort());
    for (const p of hostPaths) {
      for (const secret of FORBIDDEN) expect(contains(p, secret), `hostPath ${p} shows ${secret}`).to.equal(false);
      expect(p, 'all of /var/log').to.not.equal('/var/log');
    }
    for (const c of containers(ds)) {
      for (const m of c.volumeMounts ?? []) {
        const host = volumes.get(m.name)?.hostPath?.path as keyof typeof ALLOWED_HOST_PATHS | undefined;
        if (!host) continue;
        expect(m.readOnly ?? false, `${c.name}: ${m.mountPath} (${host}) read-only`).to.equal(ALLOWED_HOST_PATHS[host] === 'read');
        expect(m.subPath ?? '', `${c.name}: ${m.mountPath} subPath`).to.equal('');
      }
    }
  });
});

// Certificates a user brings (--tls-cert-file/--tls-key-file), as cert-manager hands them over: a
// Secret volume the kubelet updates in place (files behind a `..data` symlink swapped atomically).
// Against the real control plane, the controller and an agent with its file API keep running while
// the certificate is renewed under a loop of requests: new handshakes get the new certificate, on
// the HTTPS APIs and on the metrics ports, with no restart and no failed request.
import { X509Certificate } from 'node:crypto';
import { lstatSync, mkdirSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import type tls from 'node:tls';
import { expect } from 'chai';
import { agentFilesPath } from '../../src/apis/capturefiles.js';
import { agentAudience } from '../../src/apis/identity.js';
import { cluster } from './hooks.js';
import { createNode, requestToken, waitFor } from '../env/fixtures.js';
import {
  agentControllerToken, ensureInstalled, metricsScraperToken, mustKubectl, netwardenPorts, nextNodeIP, startAgent, startController, SYSTEM_NAMESPACE, type NetwardenProcess,
} from '../env/netwarden.js';

const NODE = 'byo-node';
const DROPTAIL = 'byo-certs';

let generation = 0;

/**
 * Writes `files` into a Secret volume at `dir` the way the kubelet's atomic writer does: a new
 * timestamped directory, `..data` pointed at it by a rename, each key a symlink through `..data`.
 */
function writeSecretVolume(dir: string, files: Record<string, Buffer>): void {
  mkdirSync(dir, { recursive: true });
  const stamp = `..${new Date().toISOString().replaceAll(':', '_')}.${++generation}`;
  mkdirSync(path.join(dir, stamp), { mode: 0o700 });
  for (const [name, data] of Object.entries(files)) writeFileSync(path.join(dir, stamp, name), data, { mode: 0o600 });
  const data = path.join(dir, '..data');
  const previous = exists(data) ? readlinkSync(data) : undefined;
  symlinkSync(stamp, path.join(dir, '..data_tmp'));
  renameSync(path.join(dir, '..data_tmp'), data);
  for (const name of Object.keys(files)) if (!exists(path.join(dir, name))) symlinkSync(path.join('..data', name), path.join(dir, name));
  if (previous) rmSync(path.join(dir, previous), { recursive: true, force: true });
}

function exists(file: string): boolean {
  try {
    lstatSync(file);
    return true;
  } catch {
    return false;
  }
}

/** A certificate from the test CA, as the files cert-manager puts in its Secret. */
async function issue(name: string, hosts: string[]): Promise<{ files: Record<string, Buffer>; serial: string }> {
  const cert = await cluster().issueServingCert(name, hosts);
  const pem = readFileSync(cert.certPath);
  return { files: { 'tls.crt': pem, 'tls.key': readFileSync(cert.keyPath) }, serial: new X509Certificate(pem).fingerprint256 };
}

type Target = 'controller API' | 'agent API' | 'controller metrics' | 'agent metrics';

describe('certificates the user brings, renewed in place', function () {
  this.timeout(240_000);
  const processes: NetwardenProcess[] = [];
  let controller: NetwardenProcess;
  let agent: NetwardenProcess;
  let nodeIP = '';
  const controllerDir = () => path.join(cluster().dir, 'byo', 'controller-tls');
  const agentDir = () => path.join(cluster().dir, 'byo', 'agent-tls');
  const controllerHosts = ['127.0.0.1', 'localhost', 'netwarden-controller.netwarden-system.svc'];
  const agentHosts = () => [nodeIP, '127.0.0.1'];
  const first = { controller: '', agent: '' };

  before(async function () {
    const cp = cluster();
    await ensureInstalled(cp);
    nodeIP = nextNodeIP();
    await createNode(cp.kubeConfig(), NODE, { internalIP: nodeIP, labels: { 'byo-certs': 'yes' } });
    await mustKubectl(cp, ['apply', '-f', '-'], `apiVersion: netwarden.io/v1alpha1\nkind: DropTail\nmetadata: {name: ${DROPTAIL}}\nspec: {nodeSelector: {byo-certs: 'yes'}}\n`);
    const c = await issue('byo-controller-1', controllerHosts);
    const a = await issue('byo-agent-1', agentHosts());
    writeSecretVolume(controllerDir(), c.files);
    writeSecretVolume(agentDir(), a.files);
    first.controller = c.serial;
    first.agent = a.serial;
    // ownCertificates: --ca-file (the test CA) on both sides; the files are the Secret volumes'.
    const files = (dir: string) => [`--tls-cert-file=${path.join(dir, 'tls.crt')}`, `--tls-key-file=${path.join(dir, 'tls.key')}`];
    processes.push((controller = await startController(cp, 'byo-controller', files(controllerDir()), { ownCertificates: true })));
    processes.push((agent = await startAgent(cp, NODE, files(agentDir()), { ownCertificates: true })));
  });

  after(async function () {
    await Promise.all(processes.map((p) => p.kill()));
    await cluster().kubectl(['delete', 'droptail', DROPTAIL, '--ignore-not-found']);
  });

  it('serves the renewed certificate on the HTTPS APIs and the metrics ports without a restart, failing no request', async function () {
    const cp = cluster();
    const ports = await netwardenPorts(cp);
    const ca = readFileSync(cp.caCertPath);
    const agentToken = await agentControllerToken(cp, NODE);
    const controllerToken = await requestToken(cp.kubeConfig(), SYSTEM_NAMESPACE, 'netwarden-controller', [agentAudience(NODE)]);
    const scraperToken = await metricsScraperToken(cp);
    let sequence = 0;
    const body = () => JSON.stringify({ node: NODE, sequence: ++sequence, sentAt: new Date().toISOString(), drops: [], shedSinceLastBatch: 0 });
    // What each target answers once TLS and its authentication passed: the agent knows no capture 'byo'.
    const targets: Record<Target, { options: https.RequestOptions; expected: number; payload?: () => string }> = {
      'controller API': { options: { host: '127.0.0.1', port: ports.controllerHttps, method: 'POST', path: `/droptail/${DROPTAIL}/drops`, headers: { authorization: `Bearer ${agentToken}`, 'content-type': 'application/json' } }, expected: 202, payload: body },
      'agent API': { options: { host: nodeIP, port: ports.agentFiles, method: 'GET', path: agentFilesPath('default', 'byo'), headers: { authorization: `Bearer ${controllerToken}` } }, expected: 404 },
      'controller metrics': { options: { host: '127.0.0.1', port: controller.metricsPort, method: 'GET', path: '/metrics', headers: { authorization: `Bearer ${scraperToken}` } }, expected: 200 },
      'agent metrics': { options: { host: '127.0.0.1', port: agent.metricsPort, method: 'GET', path: '/metrics', headers: { authorization: `Bearer ${scraperToken}` } }, expected: 200 },
    };
    const seen = new Map<Target, string[]>(Object.keys(targets).map((t) => [t as Target, []]));
    const failures: string[] = [];
    const request = (target: Target): Promise<void> =>
      new Promise((resolve) => {
        const { options, expected, payload } = targets[target];
        // A new connection each time, verified against the test CA and the name: every handshake counts.
        const req = https.request({ ...options, ca, agent: false }, (res) => {
          seen.get(target)!.push((res.socket as tls.TLSSocket).getPeerCertificate().fingerprint256);
          res.resume();
          res.on('end', () => {
            if (res.statusCode !== expected) failures.push(`${target}: HTTP ${res.statusCode}`);
            resolve();
          });
        });
        req.on('error', (err) => {
          failures.push(`${target}: ${err.message}`);
          resolve();
        });
        req.end(payload?.());
      });
    const round = () => Promise.all((Object.keys(targets) as Target[]).map(request));
    const serials = (t: Target) => new Set(seen.get(t));
    const firstOf = (t: Target) => (t.startsWith('controller') ? first.controller : first.agent);

    await waitFor(async () => {
      failures.length = 0;
      await round();
      return failures.length === 0;
    }, { timeoutMs: 60_000, description: 'all four endpoints serving the first certificate' });
    for (const t of seen.keys()) seen.set(t, []);
    const pids = [controller.child.pid, agent.child.pid];

    let swapped = false;
    const renewed = { controller: '', agent: '' };
    const deadline = Date.now() + 120_000;
    let requests = 0;
    const done = () => swapped && [...seen.keys()].every((t) => seen.get(t)!.slice(-5).filter((s) => s !== firstOf(t)).length === 5);
    while (!done() && Date.now() < deadline) {
      await round();
      requests += 4;
      if (!swapped && requests >= 40) {
        // cert-manager renews: a new key and certificate in each Secret, the kubelet swaps the volume.
        const c = await issue('byo-controller-2', controllerHosts);
        const a = await issue('byo-agent-2', agentHosts());
        writeSecretVolume(controllerDir(), c.files);
        writeSecretVolume(agentDir(), a.files);
        renewed.controller = c.serial;
        renewed.agent = a.serial;
        swapped = true;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const summary = `${requests} requests; ${[...seen].map(([t, s]) => `${t}: ${new Set(s).size} certificate(s)`).join(', ')}`;
    expect(failures, `${summary}; failed: ${failures.slice(0, 5).join('; ')}`).to.deep.equal([]);
    for (const t of seen.keys()) {
      const renewal = t.startsWith('controller') ? renewed.controller : renewed.agent;
      expect([...serials(t)], `${t}: ${summary}`).to.deep.equal([firstOf(t), renewal]);
      // Once a handshake got the new certificate, none got the old one again.
      const s = seen.get(t)!;
      expect(s.slice(s.indexOf(renewal)).every((x) => x === renewal), `${t} went back to the old certificate`).to.equal(true);
    }
    expect([controller.child.pid, agent.child.pid]).to.deep.equal(pids);
    expect([controller.child.exitCode, agent.child.exitCode]).to.deep.equal([null, null]);
    for (const p of [controller, agent]) expect(p.logs().some((l) => l.message === 'serving certificate reloaded'), `${p.name} logged the reload`).to.equal(true);
    console.log(`      ${summary}`);
  });
});

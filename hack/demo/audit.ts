// Demo story for AuditForwarder: the demo control plane's own kube-apiserver audit log, shipped by
// the node agent of a control-plane node to a webhook receiver on loopback as gzip audit EventLists,
// with `kubectl get auditforwarders` showing the bytes shipped and the lag.
//
// Starts the controller if nothing answers on its port, and the agent of its own node; removes the
// forwarder, the agent and the receiver at the end.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { CoreV1Api } from '@kubernetes/client-node';
import type { ControlPlane } from '../../test/env/controlplane.js';
import { createNode, waitFor } from '../../test/env/fixtures.js';
import { isListening, mustKubectl, netwardenPorts, startAgent, startController, type NetwardenProcess } from '../../test/env/netwarden.js';

const NODE = 'demo-audit-cp';
const FORWARDER = 'demo-audit';

/** A receiver that counts the events of the EventLists POSTed to it. */
async function startReceiver(): Promise<{ url: string; events: () => number; batches: () => number; close: () => Promise<void> }> {
  let events = 0;
  let batches = 0;
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (b: Buffer) => parts.push(b));
    req.on('end', () => {
      const raw = Buffer.concat(parts);
      const body = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw;
      events += (JSON.parse(body.toString('utf8')) as { items: unknown[] }).items.length;
      batches++;
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/audit`,
    events: () => events,
    batches: () => batches,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export async function auditStory(cp: ControlPlane, log: (line: string) => void): Promise<void> {
  const show = async (args: string[]) => log(`$ kubectl ${args.join(' ')}\n${(await mustKubectl(cp, args)).trimEnd()}`);
  const started: NetwardenProcess[] = [];
  const receiver = await startReceiver();
  try {
    const kc = cp.kubeConfig();
    if (!(await isListening((await netwardenPorts(cp)).controllerHttps))) started.push(await startController(cp, 'demo-audit-controller'));
    await createNode(kc, NODE, { controlPlane: true, labels: { 'netwarden.io/demo': 'audit' } }).catch(() => undefined);
    started.push(await startAgent(cp, NODE));

    log(`An AuditForwarder for ${NODE}: the apiserver's audit log (${cp.auditLogPath}) to a webhook on loopback, gzip EventLists every 2 s`);
    const yaml = [
      'apiVersion: netwarden.io/v1alpha1',
      'kind: AuditForwarder',
      `metadata: {name: ${FORWARDER}}`,
      'spec:',
      `  nodeSelector: {netwarden.io/demo: audit}`,
      `  source: {path: ${cp.auditLogPath}}`,
      '  clusterID: demo',
      '  batch: {maxWait: 2s}',
      '  filter: {rules: [{action: drop, verbs: [watch]}]}',
      `  sink: {webhook: {url: "${receiver.url}", allowInsecure: true, format: eventList, gzip: true}}`,
    ].join('\n');
    log(yaml);
    await mustKubectl(cp, ['apply', '-f', '-'], yaml);

    log('Some API traffic, then the receiver\'s count and the forwarder\'s columns');
    const api = kc.makeApiClient(CoreV1Api);
    for (let i = 0; i < 50; i++) await api.listNamespace();
    await waitFor(async () => Number(await mustKubectl(cp, ['get', 'auditforwarder', FORWARDER, '-o', 'jsonpath={.status.shippedBytes}'])) > 0, {
      timeoutMs: 30_000,
      description: 'bytes shipped in the status',
    });
    log(`receiver: ${receiver.events()} audit events in ${receiver.batches()} batches`);
    await show(['get', 'auditforwarders', FORWARDER]);
    await show(['get', 'auditforwarder', FORWARDER, '-o', 'jsonpath={.status}']);
  } finally {
    await mustKubectl(cp, ['delete', 'auditforwarder', FORWARDER, '--ignore-not-found']).catch(() => undefined);
    await Promise.all(started.map((p) => p.kill()));
    await receiver.close();
  }
}

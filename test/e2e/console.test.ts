// `kubectl netwarden ui` in a real browser (Debian's chromium, driven by playwright-core) against the
// real control plane, the real controller and an agent capturing on real veths: a user creates a
// capture from the form, watches it reach Capturing, downloads the zip, reads the packets with the
// pods' names, and sees the drops graph and the audit forwarders' per-node state; a user whose Role
// lacks packetcaptures/files sees Download disabled with the SelfSubjectAccessReview's reason.
// The screenshots in docs/ are taken by this test.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { parse as parseYaml } from 'yaml';
import { cluster } from './hooks.js';
import { trackChild } from '../env/controlplane.js';
import { createNamespace, createNode, createPod, createServiceAccount, kubeconfigForToken, requestToken, waitFor } from '../env/fixtures.js';
import {
  agentControllerToken, controllerUrl, ensureInstalled, mustKubectl, netwardenCaFile, netwardenPorts, nextNodeIP, postDropBatch, REPO_ROOT, startAgent, startController, type NetwardenProcess,
} from '../env/netwarden.js';
import { createPodNetwork, type PodNetwork } from '../env/podnet.js';
import type { AggregatedDrop, DropBatch } from '../../src/apis/drops.js';
import { listZip } from '../../src/plugin/zip.js';

const NS = 'shop';
const PAYMENTS = 'payments';
const NODE_A = 'ui-node-a';
const NODE_B = 'ui-node-b';
/** Has no agent: the drops of the graph are posted as its agent would. */
const NODE_DROPS = 'ui-node-drops';
const FRONT_IP = '10.244.93.10';
const API_IP = '10.244.93.11';
const LEDGER_IP = '10.244.93.20';
const CAPTURE = 'pc-console-shop';
const CHROMIUM = '/usr/bin/chromium';
const DOCS = path.join(REPO_ROOT, 'docs');

/** Starts the plugin's console as a user would (bin/kubectl-netwarden ui) and resolves with the URL it prints. */
async function startConsole(kubeconfig: string): Promise<{ url: string; child: ChildProcess }> {
  const cp = cluster();
  const url = controllerUrl(await netwardenPorts(cp));
  const child = spawn(path.join(REPO_ROOT, 'bin/kubectl-netwarden'), ['ui', `--kubeconfig=${kubeconfig}`, `--controller-url=${url}`, '-n', NS], {
    env: { ...process.env, PATH: `${path.dirname(process.execPath)}:${process.env.PATH ?? ''}` },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  trackChild(child);
  let out = '';
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const printed = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no URL printed in 60 s; stderr: ${err}`)), 60_000);
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /Netwarden console: (http:\/\/127\.0\.0\.1:\d+\/\?token=[A-Za-z0-9_-]+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.once('exit', (code) => reject(new Error(`kubectl netwarden ui exited ${code}: ${err}`)));
  });
  return { url: printed, child };
}

async function saKubeconfig(namespace: string, name: string): Promise<string> {
  const cp = cluster();
  await createServiceAccount(cp.kubeConfig(), namespace, name).catch(() => undefined);
  const token = await requestToken(cp.kubeConfig(), namespace, name);
  return kubeconfigForToken(cp, token, path.join(cp.dir, `kubeconfig-${namespace}-${name}`));
}

function drop(src: string, dst: string, protocol: 'TCP' | 'UDP', dstPort: number, count: number): AggregatedDrop {
  const t = new Date().toISOString();
  return {
    drop: { time: t, timeSource: 'nflog', prefix: 'calico-deny:', family: 'ipv4', inInterface: 'cali1', outInterface: 'cali2', src, dst, protocol, srcPort: 41000, dstPort, length: 60, ttl: 63 },
    count, firstSeen: t, lastSeen: t, source: 'nflog',
  };
}

describe('kubectl netwarden ui: the web console in a real browser', function () {
  this.timeout(300_000);
  const processes: NetwardenProcess[] = [];
  const pods: PodNetwork[] = [];
  const consoles: ChildProcess[] = [];
  let context: BrowserContext;
  let userDataDir: string;
  let adminUrl: string;
  let viewerUrl: string;
  let page: Page;
  let downloadDir: string;

  before(async function () {
    const cp = cluster();
    await ensureInstalled(cp);
    const kc = cp.kubeConfig();
    await createNode(kc, NODE_A, { internalIP: nextNodeIP() });
    await createNode(kc, NODE_B, { internalIP: nextNodeIP() });
    await createNode(kc, NODE_DROPS, { internalIP: nextNodeIP(), labels: { 'ui-drops': 'yes' } });
    await createNamespace(kc, NS);
    await createNamespace(kc, PAYMENTS);
    await createPod(kc, { namespace: NS, name: 'frontend-6c9', nodeName: NODE_A, labels: { app: 'frontend' }, podIP: FRONT_IP });
    await createPod(kc, { namespace: NS, name: 'api-7b2', nodeName: NODE_B, labels: { app: 'api' }, podIP: API_IP });
    await createPod(kc, { namespace: PAYMENTS, name: 'ledger-0', nodeName: NODE_DROPS, labels: { app: 'ledger' }, podIP: LEDGER_IP });
    pods.push(await createPodNetwork({ name: 'ui-front', ip: FRONT_IP }));
    pods.push(await createPodNetwork({ name: 'ui-api', ip: API_IP }));
    processes.push(await startController(cp, 'controller-console'), await startAgent(cp, NODE_A), await startAgent(cp, NODE_B));

    // Drops for the graph: what the agent of NODE_DROPS would send to the intake.
    await mustKubectl(cp, ['apply', '-f', '-'], "{apiVersion: netwarden.io/v1alpha1, kind: DropTail, metadata: {name: dt-console}, spec: {nodeSelector: {ui-drops: 'yes'}, recentDropsLimit: 20}}");
    await mustKubectl(cp, ['wait', '--for=condition=Ready', 'droptail/dt-console', '--timeout=60s']);
    const ca = readFileSync(await netwardenCaFile(cp));
    const token = await agentControllerToken(cp, NODE_DROPS);
    const batch: DropBatch = {
      node: NODE_DROPS, sequence: 1, sentAt: new Date().toISOString(), shedSinceLastBatch: 0,
      drops: [drop(FRONT_IP, LEDGER_IP, 'TCP', 5432, 7), drop(API_IP, LEDGER_IP, 'TCP', 5432, 2), drop(LEDGER_IP, FRONT_IP, 'UDP', 9999, 3)],
    };
    const intake = `${controllerUrl(await netwardenPorts(cp))}/droptail/dt-console/drops`;
    await waitFor(async () => (await postDropBatch(intake, ca, token, JSON.stringify(batch))) < 300, { timeoutMs: 30_000, description: 'the drop batch accepted' });

    // Two AuditForwarders on NODE_A: one shipping into a file sink, one whose webhook refuses connections.
    await mustKubectl(cp, ['apply', '-f', '-'], `{apiVersion: netwarden.io/v1alpha1, kind: AuditForwarder, metadata: {name: af-console-archive}, spec: {nodeSelector: {kubernetes.io/hostname: ${NODE_A}},
      source: {path: ${cp.auditLogPath}}, batch: {maxWait: 1s}, sink: {file: {directory: /var/lib/netwarden/console-audit}}}}`);
    await mustKubectl(cp, ['apply', '-f', '-'], `{apiVersion: netwarden.io/v1alpha1, kind: AuditForwarder, metadata: {name: af-console-siem}, spec: {nodeSelector: {kubernetes.io/hostname: ${NODE_A}},
      source: {path: ${cp.auditLogPath}}, batch: {maxWait: 1s}, sink: {webhook: {url: "http://127.0.0.1:9/siem", allowInsecure: true}}}}`);

    // The operator: cluster-admin. The viewer: may edit PacketCaptures in shop, not read their files.
    const admin = await saKubeconfig(NS, 'console-admin');
    await mustKubectl(cp, ['create', 'clusterrolebinding', 'console-admin', '--clusterrole=cluster-admin', `--serviceaccount=${NS}:console-admin`]);
    const viewer = await saKubeconfig(NS, 'console-viewer');
    await mustKubectl(cp, ['create', 'rolebinding', 'console-viewer', '-n', NS, '--clusterrole=netwarden-packetcapture-editor', `--serviceaccount=${NS}:console-viewer`]);
    const a = await startConsole(admin);
    const v = await startConsole(viewer);
    consoles.push(a.child, v.child);
    adminUrl = a.url;
    viewerUrl = v.url;

    userDataDir = await mkdtemp(path.join(cp.dir, 'chromium-profile-'));
    downloadDir = await mkdtemp(path.join(cp.dir, 'console-downloads-'));
    mkdirSync(DOCS, { recursive: true });
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      acceptDownloads: true,
      downloadsPath: downloadDir,
      viewport: { width: 1360, height: 900 },
    });
    page = await context.newPage();
    page.on('dialog', (d) => void d.accept());
  });

  after(async function () {
    await context?.close();
    for (const c of consoles) c.kill('SIGTERM');
    // The shared control plane outlives this file: no DropTail or AuditForwarder of ours is left for later controllers.
    await cluster().kubectl(['delete', 'droptail/dt-console', 'auditforwarder/af-console-archive', 'auditforwarder/af-console-siem', '--ignore-not-found', '--wait=false']);
    await cluster().kubectl(['delete', 'clusterrolebinding', 'console-admin', '--ignore-not-found']);
    await Promise.all(processes.map((p) => p.kill()));
    for (const pod of pods) await pod.destroy();
    if (userDataDir) await rm(userDataDir, { recursive: true, force: true });
  });

  it('answers the printed URL only, then drops the token from the address bar into a cookie', async function () {
    const bare = new URL(adminUrl);
    bare.search = '';
    const refused = await page.goto(bare.toString());
    expect(refused?.status()).to.equal(401);
    await page.goto(adminUrl);
    expect(new URL(page.url()).search).to.equal('');
    await page.getByTestId('who').getByText(`system:serviceaccount:${NS}:console-admin`).waitFor();
  });

  it('draws the namespace → namespace drops of the DropTail and links each pod to its Events', async function () {
    await page.goto(new URL('/#/drops', adminUrl).toString());
    const edge = page.locator(`[data-testid=drop-edge][data-from=${NS}][data-to=${PAYMENTS}]`);
    await edge.waitFor({ timeout: 30_000 });
    expect(await edge.getAttribute('data-count')).to.equal('9');
    expect(await page.locator(`[data-testid=drop-edge][data-from=${PAYMENTS}][data-to=${NS}]`).getAttribute('data-count')).to.equal('3');
    await page.getByTestId('recent-drops').getByText(`${PAYMENTS}/ledger-0`).first().waitFor();
    await page.screenshot({ path: path.join(DOCS, 'console-drops.png'), fullPage: true });
    await page.getByTestId('recent-drops').getByRole('link', { name: `${PAYMENTS}/ledger-0` }).first().click();
    await page.getByTestId('pod-events').getByText(`Packet dropped when receiving traffic from ${NS}/frontend-6c9`).first().waitFor({ timeout: 30_000 });
  });

  it('creates a PacketCapture from the form, applying the very YAML it shows, and sees it reach Capturing', async function () {
    await page.goto(new URL(`/#/captures/${NS}`, adminUrl).toString());
    const form = page.getByTestId('create-card');
    await form.locator('input[name=name]').fill(CAPTURE);
    await form.locator('select[name=protocol]').selectOption('ICMP');
    await form.locator('input[name=duration]').fill('20m');
    const yamlText = (await page.getByTestId('create-yaml').textContent()) ?? '';
    const shown = parseYaml(yamlText) as { metadata: { name: string; namespace: string }; spec: Record<string, unknown> };
    expect(shown.metadata).to.deep.equal({ name: CAPTURE, namespace: NS });
    await page.getByTestId('create-button').click();
    await page.getByTestId('create-message').getByText(`packetcapture ${NS}/${CAPTURE} created`).waitFor();
    const stored = JSON.parse(await mustKubectl(cluster(), ['get', 'packetcapture', CAPTURE, '-n', NS, '-o', 'json'])) as { spec: Record<string, unknown> };
    for (const [k, v] of Object.entries(shown.spec)) expect(stored.spec[k], k).to.deep.equal(v);
    const row = page.locator(`[data-testid=capture-row][data-name=${CAPTURE}]`);
    // Each node's agent says WaitingForTraffic once its capture is open (the Nodes column).
    const nodesCell = row.locator('td').nth(3);
    await waitFor(
      async () => {
        const text = (await nodesCell.textContent()) ?? '';
        return [NODE_A, NODE_B].every((n) => new RegExp(`${n}: (WaitingForTraffic|Capturing)`).test(text));
      },
      { timeoutMs: 60_000, description: 'the capture open on both nodes' },
    );
    // Real traffic between the two pods, on both nodes' veths, until the page says Capturing.
    await waitFor(
      async () => {
        expect((await pods[0]!.ping(API_IP)).code).to.equal(0);
        return (await row.getByTestId('capture-phase').textContent()) === 'Capturing';
      },
      { timeoutMs: 60_000, description: 'phase Capturing in the page' },
    );
    await waitFor(async () => (await row.locator('td').nth(4).textContent()) === '2', { timeoutMs: 30_000, description: 'one file per pod' });
  });

  it('downloads the zip with progress, and shows every packet with the pod it was captured on', async function () {
    const row = page.locator(`[data-testid=capture-row][data-name=${CAPTURE}]`);
    const [download] = await Promise.all([page.waitForEvent('download'), row.getByTestId('download').click()]);
    expect(download.suggestedFilename()).to.equal(`${NS}-${CAPTURE}.zip`);
    const file = path.join(downloadDir, download.suggestedFilename());
    await download.saveAs(file);
    const names = (await listZip(file)).map((e) => e.name).sort();
    expect(names.some((n) => n.startsWith(`${NODE_A}/frontend-6c9_`) && n.endsWith('.pcap')), names.join()).to.equal(true);
    expect(names.some((n) => n.startsWith(`${NODE_B}/api-7b2_`) && n.endsWith('.pcap')), names.join()).to.equal(true);
    await row.getByTestId('row-note').getByText(/^downloaded \d/).waitFor();
    // The progress bar counted the bytes against what the controller said to expect.
    const progress = (await row.getByTestId('download-progress').textContent()) ?? '';
    expect(progress).to.match(/^\s*[\d.]+ (B|KiB) of ~[\d.]+ (B|KiB) \(100%\) done$/);
    expect(await row.locator('[data-testid=download-progress] progress').getAttribute('value')).to.equal(String(readFileSync(file).length));

    await row.getByTestId('summary-button').click();
    const summary = page.getByTestId('summary');
    await summary.waitFor({ timeout: 60_000 });
    const podsShown = (await summary.getByTestId('summary-pod').allTextContents()).sort();
    expect(podsShown).to.deep.equal(['api-7b2', 'frontend-6c9']);
    const front = summary.locator('.summary-file[data-pod=frontend-6c9] pre');
    expect(await front.textContent()).to.match(new RegExp(`${FRONT_IP.replace(/\./g, '\\.')} > ${API_IP.replace(/\./g, '\\.')}.*ICMP`));
    await page.screenshot({ path: path.join(DOCS, 'console-captures.png'), fullPage: true });
  });

  it('shows each audit forwarder per node: what it shipped, its lag, gaps and last error', async function () {
    await page.goto(new URL('/#/audit', adminUrl).toString());
    const archive = page.locator(`[data-testid=af-af-console-archive] tr[data-node=${NODE_A}]`);
    await waitFor(async () => Number((await archive.locator('[data-field=shippedEvents]').textContent({ timeout: 30_000 })) ?? 0) > 0, { timeoutMs: 60_000, description: 'audit events shipped' });
    const siem = page.locator(`[data-testid=af-af-console-siem] tr[data-node=${NODE_A}] [data-field=lastError]`);
    await waitFor(async () => ((await siem.textContent({ timeout: 30_000 })) ?? '').length > 0, { timeoutMs: 60_000, description: 'the webhook failure reported' });
    expect(await siem.textContent()).to.match(/127\.0\.0\.1:9|ECONNREFUSED|connect/i);
    await page.screenshot({ path: path.join(DOCS, 'console-audit.png'), fullPage: true });
  });

  it('shows a user without get packetcaptures/files Download disabled, with the SelfSubjectAccessReview reason', async function () {
    const viewerPage = await context.newPage();
    try {
      // Another origin (port) than the admin's console: its own cookie.
      await viewerPage.goto(viewerUrl);
      // Its Role has no DropTail rule: the Drops page says so, from the access review.
      await viewerPage.getByTestId('forbidden-list').getByText(`forbidden: system:serviceaccount:${NS}:console-viewer may not list droptails (cluster-wide)`).waitFor();
      await viewerPage.goto(new URL(`/#/captures/${NS}`, viewerUrl).toString());
      const row = viewerPage.locator(`[data-testid=capture-row][data-name=${CAPTURE}]`);
      await row.waitFor({ timeout: 30_000 });
      const button = row.getByTestId('download');
      expect(await button.isDisabled()).to.equal(true);
      expect(await button.getAttribute('data-forbidden')).to.equal('true');
      const reason = `forbidden: system:serviceaccount:${NS}:console-viewer may not get packetcaptures/files in namespace ${NS}`;
      expect(await button.getAttribute('title')).to.contain(reason);
      await viewerPage.getByTestId('forbidden-list').getByText(reason).first().waitFor();
      // What the Role does allow stays enabled.
      expect(await row.getByTestId('stop').isDisabled()).to.equal(false);
      expect(await row.getByTestId('summary-button').isDisabled()).to.equal(true);
      await viewerPage.screenshot({ path: path.join(DOCS, 'console-forbidden.png'), fullPage: true });
    } finally {
      await viewerPage.close();
    }
  });

  it('stops the capture, deletes its files, then deletes it', async function () {
    await page.goto(new URL(`/#/captures/${NS}`, adminUrl).toString());
    const row = page.locator(`[data-testid=capture-row][data-name=${CAPTURE}]`);
    await row.getByTestId('stop').click();
    await waitFor(async () => ['Finished', 'Stopped'].includes((await row.getByTestId('capture-phase').textContent()) ?? ''), { timeoutMs: 60_000, description: 'the capture ended' });
    expect(await mustKubectl(cluster(), ['get', 'packetcapture', CAPTURE, '-n', NS, '-o', 'jsonpath={.spec.endTime}'])).to.match(/^\d{4}-\d\d-\d\dT/);
    // Once ended, its files can be deleted on every node, leaving the object.
    await waitFor(async () => !(await row.getByTestId('delete-files').isDisabled()), { timeoutMs: 20_000, description: 'Delete files enabled' });
    await row.getByTestId('delete-files').click();
    await waitFor(async () => (await row.locator('td').nth(4).textContent()) === '0', { timeoutMs: 60_000, description: 'no files left' });
    await row.getByTestId('delete').click();
    await row.waitFor({ state: 'detached', timeout: 60_000 });
    const left = await cluster().kubectl(['get', 'packetcapture', CAPTURE, '-n', NS]);
    expect(left.stderr).to.match(/NotFound/);
  });
});

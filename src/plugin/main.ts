#!/usr/bin/env node
// kubectl-netwarden: `kubectl netwarden capture download|delete|summary -n NS NAME`.
// kubectl runs any executable named kubectl-<plugin> on PATH; bin/kubectl-netwarden launches this.
import path from 'node:path';
import { Command } from 'commander';
import { connect, DEFAULT_CONTROLLER_URL, PluginError, type ConnectionFlags } from './client.js';
import { deleteCaptureFiles, downloadCapture, extractZip, summarizeCapture } from './capture.js';
import { escapeForTerminal } from '../util/terminal.js';
import { openBrowser, startUi, type UiFlags } from './ui/command.js';

/** Each line of text escaped for the terminal; the line breaks our own messages put in stay. */
function printable(text: string): string {
  return text.split('\n').map((line) => escapeForTerminal(line)).join('\n');
}

interface GlobalFlags extends ConnectionFlags {
  namespace?: string;
}

function withConnectionFlags(cmd: Command): Command {
  return cmd
    .option('-n, --namespace <namespace>', "the capture's namespace (default: the kubeconfig context's, else default)")
    .option('--kubeconfig <path>', 'kubeconfig file (default: $KUBECONFIG or ~/.kube/config)')
    .option('--context <name>', 'kubeconfig context')
    .option('--controller-url <url>', `the Netwarden controller's HTTPS API (env NETWARDEN_CONTROLLER_URL; default ${DEFAULT_CONTROLLER_URL}, see port-forward below)`)
    .option('--ca-file <path>', "CA certificate of the controller's serving certificate (env NETWARDEN_CA_FILE)")
    .option('--insecure-skip-tls-verify', "do not verify the controller's certificate", false)
    .option('--token <token>', "bearer token to send instead of the kubeconfig user's (env NETWARDEN_TOKEN)");
}

export function buildPlugin(): Command {
  const program = new Command('kubectl-netwarden')
    .description('Netwarden kubectl plugin')
    .addHelpText(
      'after',
      `\nThe controller's HTTPS API is reached at --controller-url. From outside the cluster:\n  kubectl -n netwarden-system port-forward svc/netwarden-controller 8443:443\n` +
        `then the default ${DEFAULT_CONTROLLER_URL} works (with --ca-file for its certificate).`,
    );
  const capture = program.command('capture').description('PacketCapture files');

  withConnectionFlags(capture.command('download').description('download every node\'s pcap files of a PacketCapture as one zip'))
    .argument('<name>', 'PacketCapture name')
    .option('-o, --output-dir <dir>', 'where to write <namespace>-<name>.zip', '.')
    .option('-x, --extract', 'also unpack the zip into <dir>/<namespace>-<name>/<node>/<file>', false)
    .option('--merge', 'spec.format pcapng: one pcapng of every node, sorted by time (else one per node)', false)
    .action(async (name: string, flags: GlobalFlags & { outputDir: string; extract: boolean; merge: boolean }) => {
      const conn = await connect(flags);
      const result = await downloadCapture(conn, name, flags.outputDir, { merge: flags.merge });
      if (result.missingNodes.length) process.stderr.write(`warning: node(s) ${escapeForTerminal(result.missingNodes.join(', '))} could not be reached; their files are missing (see MISSING-NODES.txt in the zip)\n`);
      process.stdout.write(`${escapeForTerminal(result.zipPath)}\n`);
      if (flags.extract) {
        const dir = path.resolve(flags.outputDir, `${conn.namespace}-${name}`);
        const files = await extractZip(result.zipPath, dir);
        process.stderr.write(`extracted ${files.length} file(s)\n`);
        process.stdout.write(`${escapeForTerminal(dir)}\n`);
      }
    });

  withConnectionFlags(capture.command('delete').description('delete the pcap files of a finished PacketCapture on every node'))
    .argument('<name>', 'PacketCapture name')
    .action(async (name: string, flags: GlobalFlags) => {
      const conn = await connect(flags);
      process.stdout.write(`${await deleteCaptureFiles(conn, name)}\n`); // escaped by responseMessage
    });

  withConnectionFlags(capture.command('summary').description('download a PacketCapture and list its packets, tcpdump-like'))
    .argument('<name>', 'PacketCapture name')
    .option('--merge', 'spec.format pcapng: every node\'s packets in one time-ordered list', false)
    .action(async (name: string, flags: GlobalFlags & { merge: boolean }) => {
      const conn = await connect(flags);
      const packets = await summarizeCapture(conn, name, process.stdout, { merge: flags.merge });
      process.stderr.write(`${packets} packet(s)\n`);
    });

  withConnectionFlags(program.command('ui').description('serve a web console on 127.0.0.1 that acts with your kubeconfig (Drops, Captures, Audit forwarders)'))
    .option('--port <port>', 'port on 127.0.0.1 (default: a random free one)')
    .option('--open', 'open the console in the default browser', false)
    .action(async (flags: UiFlags) => {
      const server = await startUi(flags);
      // The token in the URL is the only key to the console: print it for this user only.
      process.stdout.write(`Netwarden console: ${server.url}\n`);
      process.stderr.write('It acts with your kubeconfig; anyone with this URL can too. Ctrl-C stops it.\n');
      if (flags.open) openBrowser(server.url);
      await new Promise<void>((resolve) => {
        const stop = (): void => {
          void server.close().then(resolve);
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });

  return program;
}

try {
  await buildPlugin().parseAsync(process.argv);
} catch (err) {
  process.stderr.write(`error: ${printable(err instanceof Error ? err.message : String(err))}\n`);
  process.exitCode = err instanceof PluginError ? err.exitCode : 1;
}

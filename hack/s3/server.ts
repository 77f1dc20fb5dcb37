// Starts the test S3 server (hack/s3/main.go, built by hack/s3/build.sh into the cache) on a free
// loopback port, for the e2e tests, the benchmark and the demo.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface S3Server {
  endpoint: string;
  stop(): Promise<void>;
}

/** NETWARDEN_S3_SERVER (set by hack/bootstrap.sh), else build it now (cached after the first time). */
export function s3ServerBinary(): string {
  const fromEnv = process.env.NETWARDEN_S3_SERVER;
  if (fromEnv && existsSync(fromEnv)) return fromEnv;
  const build = path.join(path.dirname(fileURLToPath(import.meta.url)), 'build.sh');
  return execFileSync('bash', [build], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
}

export async function startS3Server(buckets: string[], onChild?: (child: ChildProcess) => void): Promise<S3Server> {
  const child = spawn(s3ServerBinary(), ['-addr', '127.0.0.1:0', ...buckets.flatMap((b) => ['-bucket', b])], { stdio: ['ignore', 'pipe', 'pipe'] });
  onChild?.(child);
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  const endpoint = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`s3 server did not start: ${stderr}`)), 15_000);
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`s3 server exited with ${code}: ${stderr}`));
    });
  });
  return {
    endpoint,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

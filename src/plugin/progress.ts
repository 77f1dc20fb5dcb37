// Download progress on stderr: a bar on a terminal, plain lines (every 10% or 5 s) otherwise, so
// logs of scripted runs stay readable.
import cliProgress from 'cli-progress';

export interface Progress {
  update(bytes: number): void;
  stop(): void;
}

function mb(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

export function progressFor(label: string, expectedBytes: number | undefined, stream: NodeJS.WriteStream = process.stderr): Progress {
  if (stream.isTTY) {
    const bar = new cliProgress.SingleBar(
      { format: `${label} [{bar}] {percentage}% | {done} of ~{expected}`, hideCursor: true, stream, clearOnComplete: false },
      cliProgress.Presets.shades_classic,
    );
    const total = Math.max(expectedBytes ?? 0, 1);
    bar.start(total, 0, { done: mb(0), expected: expectedBytes === undefined ? '?' : mb(expectedBytes) });
    return {
      update: (bytes) => {
        // The zip adds headers to the pcap bytes: grow the total rather than pass 100%.
        if (bytes > bar.getTotal()) bar.setTotal(bytes);
        bar.update(bytes, { done: mb(bytes) });
      },
      stop: () => bar.stop(),
    };
  }
  let lastPercent = -10;
  let lastTime = 0;
  return {
    update: (bytes) => {
      const percent = expectedBytes ? Math.min(100, Math.floor((bytes / expectedBytes) * 100)) : -1;
      const now = Date.now();
      if (percent >= lastPercent + 10 || now - lastTime >= 5000) {
        stream.write(`${label}: ${mb(bytes)}${percent >= 0 ? ` (${percent}%)` : ''}\n`);
        lastPercent = percent;
        lastTime = now;
      }
    },
    stop: () => undefined,
  };
}

// One benchmark's measurements. A row may carry the reference it is compared with in the same run
// (cat, grep, gzip -1, tcpdump, or the target) and the ratio value / reference.
export interface BenchRow {
  metric: string;
  value: number;
  unit: string;
  reference?: number;
  ratio?: number;
}

export interface BenchResult {
  name: string;
  rows: BenchRow[];
}

export type Bench = () => Promise<BenchResult>;

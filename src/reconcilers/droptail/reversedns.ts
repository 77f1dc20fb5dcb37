// Reverse DNS for addresses outside the cluster, never on the pipeline's critical path.
//
// The choice made here: a lookup RACES A SHORT DEADLINE. `resolve(ip, deadlineMs)` answers with
// the cached name at once; otherwise it starts (or joins) one PTR query and waits at most
// deadlineMs for it. A query that is slower keeps running and fills the cache, so the next drop
// of that address (and the bump of its Event, which rewrites the message) shows the name. Answers
// are cached with a TTL, negative ones (NXDOMAIN, timeouts, errors) for a shorter one; the cache
// and the number of queries in flight are bounded.
import { Resolver } from 'node:dns/promises';
import { errorMessage, loggerFor } from '../../util/log.js';
import { dnsLookups } from './metrics.js';

export interface ReverseDnsOptions {
  /** "ip" or "ip:port" (IPv6 as "[ip]:port"); the system resolvers when empty. */
  servers?: readonly string[];
  /** Per query, as c-ares counts it. */
  timeoutMs?: number;
  positiveTtlMs?: number;
  negativeTtlMs?: number;
  maxEntries?: number;
  maxInFlight?: number;
  now?: () => number;
}

interface CacheEntry {
  name: string | undefined;
  expires: number;
}

export class ReverseDns {
  private readonly resolver: Resolver;
  private readonly cache = new Map<string, CacheEntry>();
  private readonly inFlight = new Map<string, Promise<string | undefined>>();
  private readonly positiveTtlMs: number;
  private readonly negativeTtlMs: number;
  private readonly maxEntries: number;
  private readonly maxInFlight: number;
  private readonly now: () => number;
  private readonly log = loggerFor('droptail/reversedns');

  constructor(opts: ReverseDnsOptions = {}) {
    this.resolver = new Resolver({ timeout: opts.timeoutMs ?? 1000, tries: 2 });
    if (opts.servers && opts.servers.length > 0) this.resolver.setServers([...opts.servers]);
    this.positiveTtlMs = opts.positiveTtlMs ?? 5 * 60_000;
    this.negativeTtlMs = opts.negativeTtlMs ?? 60_000;
    this.maxEntries = opts.maxEntries ?? 10_000;
    this.maxInFlight = opts.maxInFlight ?? 64;
    this.now = opts.now ?? Date.now;
  }

  /** The cached answer: a name, null for "known to have none", undefined for "not asked yet". */
  cached(ip: string): string | null | undefined {
    const entry = this.cache.get(ip);
    if (!entry) return undefined;
    if (entry.expires <= this.now()) {
      this.cache.delete(ip);
      return undefined;
    }
    return entry.name ?? null;
  }

  /** The name of ip within deadlineMs, or undefined (no name, or not known yet). */
  async resolve(ip: string, deadlineMs: number): Promise<string | undefined> {
    const hit = this.cached(ip);
    if (hit !== undefined) {
      dnsLookups.inc({ result: 'cached' });
      return hit ?? undefined;
    }
    const lookup = this.lookup(ip);
    if (!lookup) return undefined;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), deadlineMs)));
    try {
      return await Promise.race([lookup, deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** One query per address at a time; none beyond maxInFlight (the address stays unnamed for now). */
  private lookup(ip: string): Promise<string | undefined> | undefined {
    const running = this.inFlight.get(ip);
    if (running) return running;
    if (this.inFlight.size >= this.maxInFlight) {
      dnsLookups.inc({ result: 'skipped' });
      return undefined;
    }
    const query = this.query(ip).finally(() => this.inFlight.delete(ip));
    this.inFlight.set(ip, query);
    return query;
  }

  private async query(ip: string): Promise<string | undefined> {
    let name: string | undefined;
    try {
      const names = await this.resolver.reverse(ip);
      name = names[0]?.replace(/\.$/, '');
      dnsLookups.inc({ result: name ? 'found' : 'not_found' });
    } catch (err) {
      const code = (err as { code?: string }).code;
      const notFound = code === 'ENOTFOUND' || code === 'ENODATA';
      dnsLookups.inc({ result: notFound ? 'not_found' : 'error' });
      if (!notFound) this.log.debug('reverse lookup failed', { ip, error: errorMessage(err) });
    }
    this.remember(ip, name);
    return name;
  }

  private remember(ip: string, name: string | undefined): void {
    if (this.cache.size >= this.maxEntries) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(ip, { name, expires: this.now() + (name ? this.positiveTtlMs : this.negativeTtlMs) });
  }
}

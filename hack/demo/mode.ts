// Which demo `npm run demo` runs: on the real node (test/env/realnode.ts) where this machine can run
// one, else today's demo as local processes, announced in one line that says why.

export type DemoMode = { kind: 'realnode' } | { kind: 'processes'; line: string };

/**
 * `unsupported` is realNodeUnsupported() (why this machine cannot run a real node: not root, no
 * cgroups, ...); it is not asked when NETWARDEN_DEMO_PROCESSES=1 chooses the processes anyway.
 */
export function demoMode(env: NodeJS.ProcessEnv, unsupported: () => string | undefined): DemoMode {
  if (env.NETWARDEN_DEMO_PROCESSES === '1') return { kind: 'processes', line: 'NETWARDEN_DEMO_PROCESSES=1: running the demo as local processes' };
  const reason = unsupported();
  if (reason) return { kind: 'processes', line: `no real node on this machine (${reason}): running the demo as local processes` };
  return { kind: 'realnode' };
}

// Import rules of src/, checked by `npm run lint:deps` and by `npm test` (hack/run.sh).
//
//   src/apis         the shared contracts (types, schemas, wire formats, the capture file API)
//   src/runtime      the controller runtime (informers, work queue, leader election, HTTPS API)
//   src/util         small helpers without any Netwarden knowledge
//   src/nodeagent    what runs on each node          } import only apis, the runtime and util,
//   src/reconcilers  the controller side of each kind } never each other
//   src/plugin       the kubectl plugin: apis, util and src/pcap, no agent or controller internals
//   src/cli          the composition root: may import everything
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'An import circle: modules that cannot be understood (or loaded) one before the other.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'agent-imports-shared-only',
      severity: 'error',
      comment: 'The node agent depends only on src/apis, the controller runtime and src/util (and its own modules).',
      from: { path: '^src/nodeagent/' },
      to: { path: '^src/', pathNot: '^src/(nodeagent|apis|runtime|util)/' },
    },
    {
      name: 'controller-imports-shared-only',
      severity: 'error',
      comment: 'The reconcilers depend only on src/apis, the controller runtime and src/util (and their own modules).',
      from: { path: '^src/reconcilers/' },
      to: { path: '^src/', pathNot: '^src/(reconcilers|apis|runtime|util)/' },
    },
    {
      name: 'plugin-imports-no-internals',
      severity: 'error',
      comment: 'The kubectl plugin talks to the controller through src/apis contracts, not agent or controller code.',
      from: { path: '^src/plugin/' },
      to: { path: '^src/(nodeagent|reconcilers|runtime|cli)/' },
    },
    {
      name: 'apis-are-leaves',
      severity: 'error',
      comment: 'The contracts depend on nothing of Netwarden but src/util.',
      from: { path: '^src/apis/' },
      to: { path: '^src/', pathNot: '^src/(apis|util)/' },
    },
    {
      name: 'runtime-knows-no-kind',
      severity: 'error',
      comment: 'The controller runtime serves every kind and knows none of them.',
      from: { path: '^src/runtime/' },
      to: { path: '^src/', pathNot: '^src/(runtime|apis|util)/' },
    },
    {
      name: 'no-old-runtime-path',
      severity: 'error',
      comment: 'src/controllers is now src/runtime; what is left there only serves a test that is being rewritten.',
      from: { path: '^src/', pathNot: '^src/controllers/' },
      to: { path: '^src/controllers/' },
    },
    {
      name: 'util-is-a-leaf',
      severity: 'error',
      comment: 'src/util imports nothing else of src.',
      from: { path: '^src/util/' },
      to: { path: '^src/', pathNot: '^src/util/' },
    },
    {
      name: 'pcap-is-a-library',
      severity: 'error',
      comment: 'src/pcap (reading and summarizing pcap files) imports only itself and src/util.',
      from: { path: '^src/pcap/' },
      to: { path: '^src/', pathNot: '^src/(pcap|util)/' },
    },
  ],
  options: {
    includeOnly: '^src/',
    tsConfig: { fileName: 'tsconfig.json' },
    // Type-only imports are dependencies too: a type moved to the wrong side is the same coupling.
    tsPreCompilationDeps: true,
  },
};

// src/controllers is now src/runtime. This module is left only for test/unit/audit-pipeline.test.ts,
// which imports the registry from here and is being rewritten by another change; delete it once
// that test imports '../../src/runtime/metrics.js'. Nothing in src may import it (.dependency-cruiser.cjs).
export * from '../runtime/metrics.js';

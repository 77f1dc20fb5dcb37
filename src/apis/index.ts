// The Netwarden API in one import: the three kinds' schemas, types and CRD metadata, the CRD
// renderer and the offline validator.

export * from './meta.js';
export * from './schema.js';
export * from './droptail.js';
export * from './packetcapture.js';
export * from './auditforwarder.js';
export * from './crd.js';
export * from './validate.js';
export * from './admission.js';
export * from './limits.js';

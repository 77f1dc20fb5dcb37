export * from './identity.js';
export * from './rotated.js';
export * from './checkpoint.js';
export * from './follower.js';
export { RotationWatcher } from './watcher.js';

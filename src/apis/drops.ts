// The wire format of drop batches that node agents POST to the controller:
//   POST {controllerUrl}/droptail/{dropTailName}/drops   (JSON body: DropBatch)
// The caller's ServiceAccount token must pass a TokenReview and a SubjectAccessReview for
// `create` on `droptails/drops` (group netwarden.io) named dropTailName.
import type { PacketDrop } from '../nodeagent/drops/types.js';

export const DROPS_PATH = '/droptail/:name/drops';

export type DropSourceType = 'nflog' | 'journal' | 'file';

/** Identical drops aggregated over the agent's window: one entry, counted. */
export interface AggregatedDrop {
  drop: PacketDrop;
  /** How many identical drops (same dropKey) were seen in the window; at least 1. */
  count: number;
  /** ISO times of the first and last of them. */
  firstSeen: string;
  lastSeen: string;
  source: DropSourceType;
}

export interface DropBatch {
  node: string;
  /** Sequence number per agent process, so the controller can log gaps (shed batches). */
  sequence: number;
  /** ISO time the agent sent the batch. */
  sentAt: string;
  drops: AggregatedDrop[];
  /** Drops the agent had to shed since its previous accepted batch (controller unreachable, queue full). */
  shedSinceLastBatch: number;
}

/** The controller's answer to an accepted batch (HTTP 202). */
export interface DropBatchAccepted {
  accepted: number;
}

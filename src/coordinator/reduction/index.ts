/**
 * The registry of reductions (see ./api.ts). A new one (a ring, reducer
 * processes on other hosts, …) is a file beside star.ts and sharded.ts and
 * one entry here; the coordinator looks it up by name and depends on nothing else.
 */
import type { ReductionFactory } from './api.js';
import { shardedReduction } from './sharded.js';
import { starReduction } from './star.js';

export const REDUCTIONS: Readonly<Record<string, ReductionFactory>> = Object.freeze({ star: starReduction, sharded: shardedReduction });

export const DEFAULT_REDUCTION = 'star';

export type { Contribution, MirrorStore, ReductionContext, ReductionFactory, ReductionService, ReductionShape, Update } from './api.js';

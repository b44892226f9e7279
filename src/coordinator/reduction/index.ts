/**
 * The registry of reductions (see ./api.ts). A new one (sharded, a ring, …)
 * is a file beside star.ts and one entry here; the coordinator looks it up by
 * name and depends on nothing else.
 */
import type { Reduction } from './api.js';
import { star } from './star.js';

export const REDUCTIONS: Readonly<Record<string, Reduction>> = Object.freeze({ star });

export const DEFAULT_REDUCTION = 'star';

export type { Contribution, Reduction, ReductionShape } from './api.js';

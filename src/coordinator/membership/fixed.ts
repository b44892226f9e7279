/**
 * `fixed` membership, today's: the world size is set at the start and never
 * changes. Ranks are taken while the run joins (an explicit rank if free,
 * else the lowest free one); once training has begun nobody else is
 * admitted, and losing any member fails the run (a lost joiner only frees
 * its rank, since nothing has been computed with it yet).
 */
import type { Admission, JoinRequest, LossVerdict, MembershipPolicy, MembershipView } from './api.js';

export const fixed: MembershipPolicy = {
  name: 'fixed',
  admit(view: MembershipView, req: JoinRequest): Admission {
    if (view.stage !== 'joining') return { refuse: `the run has already started with ${view.worldSize} workers` };
    const { rank } = req;
    if (!Number.isSafeInteger(rank) || rank < -1) return { refuse: `rank ${rank} is not a rank (an integer ≥ 0, or -1 to be given one)` };
    if (rank >= 0) {
      if (rank >= view.worldSize) return { refuse: `rank ${rank} is outside the world size ${view.worldSize}` };
      const holder = view.members[rank];
      if (holder) return { refuse: `rank ${rank} is already taken by ${holder.host} pid ${holder.pid}` };
      return { rank };
    }
    // Which ranks explicit-rank workers may still claim cannot be known; take the lowest free one.
    const free = view.members.findIndex((m) => m === undefined);
    return free < 0 ? { refuse: `all ${view.worldSize} ranks are taken` } : { rank: free };
  },
  onLost(view: MembershipView): LossVerdict {
    return view.stage === 'joining' ? 'free' : 'fail';
  },
};

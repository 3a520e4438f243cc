// Slow start: a backend that comes back (health up again, or the operator puts it back up)
// gets a share of new flows that grows with time, so a cold cache or a JIT that is still warming
// up is not hit with its full share at once.

/** Steps per ramp: the weight is raised this many times over the slow-start period. */
export const slowStartSteps = 10;

/**
 * The weight to use `elapsedMs` into a ramp of `periodMs` towards `weight`: at least 1 (a
 * weight of 0 would take no flows at all), at most `weight`, growing linearly.
 */
export function slowStartWeight(weight: number, elapsedMs: number, periodMs: number): number {
  if (weight === 0 || periodMs <= 0 || elapsedMs >= periodMs) return weight;
  const share = Math.max(0, elapsedMs) / periodMs;
  return Math.max(1, Math.min(weight, Math.ceil(weight * share)));
}

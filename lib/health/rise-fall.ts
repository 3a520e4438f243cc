// The rise/fall state machine of active health checks, as a pure function so it can be tested as
// a table. One failed check does not take a backend down, and one lucky pass does not bring it
// back: an up backend goes down after `fall` failures in a row, a down one comes up after `rise`
// passes in a row.

/** What the checks say of one target. */
export interface RiseFallState {
  readonly up: boolean;
  /**
   * Results in a row that count towards the next transition: failures while up, passes while
   * down. Always below `fall` (up) or `rise` (down).
   */
  readonly consecutive: number;
}

/** The outcome of one check result: the new state, and the transition if there was one. */
export interface RiseFallStep {
  readonly state: RiseFallState;
  readonly transition?: 'up' | 'down';
}

const upSteady: RiseFallStep = Object.freeze({ state: Object.freeze({ up: true, consecutive: 0 }) });
const downSteady: RiseFallStep = Object.freeze({ state: Object.freeze({ up: false, consecutive: 0 }) });
const wentUp: RiseFallStep = Object.freeze({ state: upSteady.state, transition: 'up' });
const wentDown: RiseFallStep = Object.freeze({ state: downSteady.state, transition: 'down' });

/**
 * Applies one check result. A result that confirms the current state resets the count; one that
 * contradicts it adds to the count, and the `rise`-th pass (down) or `fall`-th failure (up) flips
 * the state and resets the count.
 *
 * The steady outcomes are shared frozen objects: this runs once per check, for every target.
 */
export function riseFall(state: RiseFallState, passed: boolean, config: { readonly rise: number; readonly fall: number }): RiseFallStep {
  if (state.up === passed) return state.up ? upSteady : downSteady;
  const consecutive = state.consecutive + 1;
  if (consecutive >= (state.up ? config.fall : config.rise)) return state.up ? wentDown : wentUp;
  return { state: { up: state.up, consecutive } };
}

/** The state a target starts in. */
export function initialRiseFall(up: boolean): RiseFallState {
  return up ? upSteady.state : downSteady.state;
}

// The value lists of lb4's enumerations as people write them. The engine numbers them by their
// index here (lib/engine/native-types.ts), and the addon's own lists are checked against that
// numbering when it loads.

/** How a new flow picks its backend. */
export type Algorithm = 'roundrobin' | 'leastconn';
/** A backend's state: only `up` backends take new flows; the others keep the flows they have. */
export type BackendState = 'up' | 'down' | 'draining' | 'maintenance';

export const algorithms: readonly Algorithm[] = ['roundrobin', 'leastconn'];
export const backendStates: readonly BackendState[] = ['up', 'down', 'draining', 'maintenance'];

// The value lists of lb4's enumerations as people write them. They are the engine's own lists
// (lib/engine/native-types.ts, checked against the addon's exports when it loads), so a value
// the data plane gains is a value the options accept, with no second list to keep.

import { algorithmNames, backendStateNames, hashKeyNames, protocolNames, proxyVersionNames } from '../engine/native-types.js';

/** How a new flow picks its backend. */
export type Algorithm = (typeof algorithmNames)[number];
/** A backend's state: only `up` backends take new flows; the others keep the flows they have. */
export type BackendState = (typeof backendStateNames)[number];

export const algorithms: readonly Algorithm[] = algorithmNames;
/** What maglev hashes: the client's address, or its address and port. */
export type HashKey = (typeof hashKeyNames)[number];
export const hashKeys: readonly HashKey[] = hashKeyNames;
export const backendStates: readonly BackendState[] = backendStateNames;
/** A listener's transport: TCP flows or UDP sessions. */
export type Protocol = (typeof protocolNames)[number];
export const protocols: readonly Protocol[] = protocolNames;

/** How a listener's traffic reaches its backends: lb4's splice proxy, or the kernel's NAT. */
export const forwardModes = ['proxy', 'nat'] as const;
export type ForwardMode = (typeof forwardModes)[number];
/** A nat listener's return path: none (lb4 is the backends' gateway) or masquerade. */
export const snatModes = ['none', 'masquerade'] as const;
export type SnatMode = (typeof snatModes)[number];
/** The PROXY protocol header a listener sends its backends first: none, v1 (text) or v2 (binary). */
export type ProxyVersion = (typeof proxyVersionNames)[number];
export const proxyVersions: readonly ProxyVersion[] = proxyVersionNames;

// Types of netns-core.mjs, for the TypeScript tests.

export interface Netns {
  /** The namespace's full name, for `ip netns exec`. */
  readonly name: string;
  /** `ip -n NAME ARGS...` */
  ip(...args: string[]): Promise<string>;
  /** The interface's MAC address. */
  mac(ifname: string): Promise<string>;
  /** The addresses on an interface, as "ip/prefix". */
  addresses(ifname: string): Promise<string[]>;
  /** The neighbour entry for `address`: MAC and state, or undefined. */
  neighbour(address: string, ifname: string): Promise<{ mac?: string; state: string[] } | undefined>;
  /** The pids of every process in the namespace (`ip netns pids`). */
  pids(): Promise<number[]>;
}

export function nodeCommand(script: string, args: string[], netns?: string): [string, string[]];
export function ip(...args: string[]): Promise<string>;
export function deleteNamespaceNow(name: string): void;
export function orphanNamespaces(prefix: string): Promise<string[]>;
export function netnsHandle(name: string): Netns;
export function addNamespace(name: string): Promise<Netns>;
export function link(a: Netns, b: Netns, ifname?: string, bIfname?: string): Promise<void>;
export function bridge(sw: Netns, hosts: Netns[]): Promise<void>;

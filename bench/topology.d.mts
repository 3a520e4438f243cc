// Types of topology.mjs, for the TypeScript tests.

export interface Place {
  netns: string | null;
  host: string;
}
export interface Topology {
  name: 'loopback' | 'veth';
  client: Place;
  system: Place;
  backend: Place;
  namespaces: string[];
  teardown(): void;
  description: string;
}

export const NS_PREFIX: string;
export const NAT_TABLE_PREFIX: string;
export const topologies: string[];
export function vethPlan(pid: number): {
  namespaces: { client: string; system: string; backend: string };
  client: string;
  systemFront: string;
  systemBack: string;
  backend: string;
  prefix: number;
};
export function makeTopology(name: 'loopback' | 'veth'): Promise<Topology>;
export function removeLeftovers(): Promise<string[]>;
export function deleteNatTable(table: string): void;

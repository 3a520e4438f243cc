// The shapes of a listener's routes by TLS server name (lib/config/sni-routes.ts validates them).

/** A route by TLS server name: clients naming one of `names` go to the backends of `pool`. */
export interface SniRouteOptions {
  /** Host names (`api.example.com`) or one-label wildcards (`*.example.org`), any case. */
  names: string | string[];
  pool: string;
}

/** A validated route. */
export interface SniRouteConfig {
  /** Lower case, no trailing dot. */
  readonly names: readonly string[];
  readonly pool: string;
}

/** The SNI options of a listener, or (at the top level) every listener's default. */
export interface SniOptions {
  /** Routes by the server name of TLS clients (passthrough) to backend pools: `{ names, pool }` or `name=pool`. */
  sni?: Array<SniRouteOptions | string>;
  /** The pool for clients that name no server or none routed; without it they are closed. */
  defaultPool?: string;
}

/** A validated listener's SNI settings. */
export interface SniListenerConfig {
  /** null: the listener does not route by server name. */
  readonly sni: readonly SniRouteConfig[] | null;
  /** The pool for clients no route matches; null: they are closed. */
  readonly defaultPool: string | null;
  /** The pools its backends name, in order of first appearance. */
  readonly pools: readonly string[];
}

/** A backend as a program describes it: its pool. */
export interface PooledBackendOptions {
  /** The backend pool it belongs to, on a listener that routes by TLS server name (`sni`). */
  pool?: string;
}

/** A backend's pool, validated; null: none. */
export interface PooledBackend {
  readonly pool: string | null;
}

// The web dashboard's files, served by the admin API itself: one HTML page, its script and style
// sheet (dashboard/ at the package root, shipped as they are: no build step), and uPlot's two
// files from its npm package. Nothing is fetched from anywhere else, so the page works offline,
// and its Content-Security-Policy lets it talk to this admin API alone.
//
// The files hold no data about the balancer: the page reads everything through the JSON API,
// with the bearer token the person types in. So they are served without the token (a browser
// cannot attach one to a page load), and everything they then ask for still needs it.

import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { packageRoot } from './package-root.js';

/** One file the dashboard needs, read once on first use. */
interface Asset {
  readonly contentType: string;
  /** Where it is on disk, found when first asked for. */
  readonly locate: () => string;
}

const require = createRequire(import.meta.url);
const own = (name: string) => () => join(packageRoot(), 'dashboard', name);
const uplot = (name: string) => () => require.resolve(`uplot/dist/${name}`);

// The page itself answers GET / (for browsers; see wantsPage); the rest live under /dashboard/.
const assets: Readonly<Record<string, Asset>> = {
  '/': { contentType: 'text/html; charset=utf-8', locate: own('index.html') },
  '/dashboard/dashboard.js': { contentType: 'text/javascript; charset=utf-8', locate: own('dashboard.js') },
  '/dashboard/dashboard.css': { contentType: 'text/css; charset=utf-8', locate: own('dashboard.css') },
  '/dashboard/uplot.js': { contentType: 'text/javascript; charset=utf-8', locate: uplot('uPlot.iife.min.js') },
  '/dashboard/uplot.css': { contentType: 'text/css; charset=utf-8', locate: uplot('uPlot.min.css') },
};

const cache = new Map<string, Buffer>();

/**
 * Scripts and styles from this server only, requests to this server only, no framing (so no
 * other page can overlay the drain buttons), nothing sent as a referrer.
 */
const pageHeaders: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  // The files change with the package; a browser asks again rather than keep an old page.
  'cache-control': 'no-cache',
};

/** The highest quality `accept` gives any of `types` (`*\/*` and `type/*` included); 0 when none. */
function quality(accept: string, types: readonly string[]): number {
  let best = 0;
  for (const part of accept.split(',')) {
    const [range, ...params] = part.trim().toLowerCase().split(';');
    const q = params.map((p) => /^\s*q\s*=\s*([\d.]+)\s*$/.exec(p)).find((m) => m !== null);
    const value = q ? Number(q[1]) : 1;
    if (types.some((type) => range === type || range === '*/*' || range === `${type.split('/')[0]}/*`)) best = Math.max(best, Number.isFinite(value) ? value : 0);
  }
  return best;
}

/**
 * Whether a GET / wants the dashboard rather than the JSON index: it must prefer HTML to JSON, as
 * a browser's page load does (`text/html,...,*\/*;q=0.8`). curl (`*\/*`), the CLI and scripts
 * that ask for JSON get the index as before.
 */
export function wantsPage(req: IncomingMessage): boolean {
  const accept = req.headers.accept;
  if (accept === undefined) return false;
  return quality(accept, ['text/html']) > quality(accept, ['application/json']);
}

/** A dashboard file to send, or null when `pathname` is not one. */
export function dashboardAsset(pathname: string): { body: Buffer; headers: Record<string, string> } | null {
  const asset = Object.hasOwn(assets, pathname) ? assets[pathname] : undefined;
  if (asset === undefined) return null;
  let body = cache.get(pathname);
  if (body === undefined) {
    body = readFileSync(asset.locate());
    cache.set(pathname, body);
  }
  return { body, headers: { ...pageHeaders, 'content-type': asset.contentType, 'content-length': String(body.length), ...(pathname === '/' ? { vary: 'Accept' } : {}) } };
}

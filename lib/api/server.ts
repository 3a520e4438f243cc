// The admin HTTP API and /metrics, on node:http alone. The balancer starts it (config `admin`)
// and closes it when it closes; the server never keeps the process alive by itself, because the
// balancer's own handle already does while it runs.
//
// Every request passes, in order: the Origin and Host checks (TCP only), the dashboard's files
// (lib/api/dashboard.ts, no token needed), the bearer token (when one is configured), the route table
// (lib/api/routes.ts), the query parameter check, the handler. Whatever a handler throws is
// answered with the status the one code table (lib/errors.ts) gives its code (lib/api/http.ts).

import { createHash, timingSafeEqual } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, lstat, unlink } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, isIP, type AddressInfo } from 'node:net';
import { dirname } from 'node:path';
import { formatHostPort } from '../config/address.js';
import type { Logger } from '../log.js';
import type { AdminConfig } from '../types.js';
import { dashboardAsset, wantsPage } from './dashboard.js';
import { adminConnectionLimit, openFileLimit } from './descriptor-limit.js';
import { errorReply, httpError, readJsonBody, sendJson } from './http.js';
import { MetricsCollector } from './metrics.js';
import { packageVersion } from './package-root.js';
import { checkQuery, matchRoute, type AdminContext, type Reply } from './routes.js';
import type { AdminTarget } from './target.js';

/** A running admin API. */
export interface AdminServer {
  /** `http://127.0.0.1:PORT` (`http://[::1]:PORT` for IPv6), or `unix:/path` for a unix socket. */
  readonly url: string;
  /** Stops accepting, ends idle keep-alive connections at once and the rest once their answer is out. Idempotent. */
  close(): Promise<void>;
}

/**
 * How long close() lets requests already being handled finish (a reload's answer, say) before
 * their connections are cut too.
 */
const closeGraceMs = 2000;
/** A whole request, headers and body, must arrive within this; the slowest handler is a reload. */
const requestTimeoutMs = 60_000;
/**
 * The admin port must never hold descriptors the data plane needs. A connection has this long to
 * send its request line and headers (a connection that sends nothing included), and a kept-alive
 * connection is closed after this long without a request. Node checks both every
 * `checkIntervalMs`, so an idle connection lasts at most the sum.
 */
const headersTimeoutMs = 5_000;
const keepAliveTimeoutMs = 5_000;
const checkIntervalMs = 1_000;
/** Request line and headers together; a longer URL or more headers are answered 431. */
const maxHeaderBytes = 16 * 1024;
/** Connections refused at the limit are logged at most this often. */
const dropLogIntervalMs = 10_000;

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/**
 * Checks `Authorization: Bearer <token>`. Both sides are hashed first so the comparison takes the
 * same time whatever the presented token's length, and timingSafeEqual then leaks nothing of
 * where they differ.
 */
function authorize(req: IncomingMessage, tokenHash: Buffer): void {
  const header = req.headers.authorization;
  const match = header === undefined ? null : /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  if (!match) {
    throw httpError('LB4_UNAUTHORIZED', 'this admin API needs "Authorization: Bearer <token>"', { headers: { 'www-authenticate': 'Bearer realm="lb4"' } });
  }
  if (!timingSafeEqual(sha256(match[1]), tokenHash)) {
    throw httpError('LB4_UNAUTHORIZED', 'the bearer token is wrong', { headers: { 'www-authenticate': 'Bearer realm="lb4", error="invalid_token"' } });
  }
}

/**
 * Refuses requests that a web browser makes on behalf of a page. Without a token, the API trusts
 * whoever can connect to loopback, and a browser on this host can: any page may POST to
 * http://127.0.0.1:9090/backends with a text/plain body (a "simple" request, sent without asking)
 * and add its own server as a backend, or drain every backend; and a name the page's owner points
 * at 127.0.0.1 (DNS rebinding) even lets it read the answers. Browsers always send `Origin` with a
 * cross-site POST, PUT or DELETE, and always send the page's host name in `Host`; curl, the lb4
 * CLI and Prometheus send no `Origin` and name the address they were given. So: no `Origin` but
 * this API's own (the dashboard's), and, without a token, a `Host` that is an IP address, localhost, or the host the API was
 * configured on. (With a token a page can do nothing, rebound or not, and a remote client may
 * reach the API under any name.)
 */
function refuseBrowserRequests(req: IncomingMessage, configuredHost: string, hasToken: boolean): void {
  const host = req.headers.host;
  // The one page allowed is lb4's own dashboard, served from here: its requests carry an Origin
  // naming the very host and port they are sent to. A rebound page has that too, but the Host
  // check below refuses its name (and with a token it has no token).
  const origin = req.headers.origin;
  if (origin !== undefined && (host === undefined || origin.toLowerCase() !== `http://${host.toLowerCase()}`)) {
    throw httpError('LB4_FORBIDDEN', 'requests from other web pages (an Origin header that is not this admin API) are refused');
  }
  if (hasToken || host === undefined) return;
  const name = (host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d*$/, '')).toLowerCase();
  if (isIP(name) || name === 'localhost' || name === configuredHost.toLowerCase()) return;
  throw httpError('LB4_FORBIDDEN', `the Host header names "${name}", not this admin API's address`);
}

/** Splits a request target into path and query without URL's host parsing (`//x/status` is a path here). */
function splitTarget(target: string): { pathname: string; query: URLSearchParams } {
  const q = target.indexOf('?');
  return q < 0 ? { pathname: target, query: new URLSearchParams() } : { pathname: target.slice(0, q), query: new URLSearchParams(target.slice(q + 1)) };
}

/** Whether something accepts connections on the unix socket at `path`. */
function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    // Refused: nobody listens, the file is left over from a process that died. Any other error
    // (permissions, say) means it is not ours to remove; listen() will then report the problem.
    probe.once('error', (err: NodeJS.ErrnoException) => resolve(err.code !== 'ECONNREFUSED'));
  });
}

/** Removes a unix socket file a dead process left behind; never a regular file, never a live socket. */
async function removeStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = (await lstat(path)).isSocket();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (isSocket && !(await socketAnswers(path))) await unlink(path);
}

function listen(server: Server, config: AdminConfig): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      const where = config.kind === 'unix' ? config.path : formatHostPort(config.host, config.port);
      // listen(2) on a path whose directory is missing fails with EACCES or ENOENT, which reads
      // like a permission problem; say what it is.
      if (config.kind === 'unix' && (err.code === 'EACCES' || err.code === 'ENOENT') && !existsSync(dirname(config.path))) {
        err.message = `cannot listen for the admin API on ${where}: the directory ${dirname(config.path)} does not exist`;
      } else {
        err.message = `cannot listen for the admin API on ${where}: ${err.message}`;
      }
      reject(err);
    };
    server.once('error', onError);
    const ready = () => {
      server.off('error', onError);
      resolve();
    };
    if (config.kind === 'unix') server.listen({ path: config.path }, ready);
    else server.listen({ host: config.ip, port: config.port }, ready);
  });
}

/** The dashboard file a GET asks for: `/` only when the client prefers HTML (a browser). */
function pageFile(pathname: string, req: IncomingMessage): ReturnType<typeof dashboardAsset> {
  if (pathname === '/' && !wantsPage(req)) return null;
  return dashboardAsset(pathname);
}

function send(res: ServerResponse, reply: Reply): void {
  if ('text' in reply) {
    res.writeHead(reply.status, { 'content-type': reply.contentType, 'content-length': Buffer.byteLength(reply.text) });
    res.end(reply.text);
  } else {
    sendJson(res, reply.status, reply.json, reply.headers);
  }
}

/**
 * Starts the admin HTTP API for `target`: on a TCP address (port 0 picks a free port; the URL
 * has the real one) or a unix socket (a stale socket file is removed first; the file is made
 * owner-only and removed on close). With `config.token`, every request needs the bearer token.
 * Rejects with a Node-style system error when it cannot listen.
 */
export async function startAdminServer(target: AdminTarget, config: AdminConfig, log: Logger): Promise<AdminServer> {
  const tokenHash = config.token === null ? null : sha256(config.token);
  const metrics = new MetricsCollector(target, { version: packageVersion() });
  const ctx: AdminContext = { target, version: packageVersion(), metrics };
  // Responses not yet finished: close() lets them go out, then ends their connections.
  const inFlight = new Set<ServerResponse>();
  let closing = false;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const started = process.hrtime.bigint();
    const method = req.method ?? 'GET';
    const { pathname, query } = splitTarget(req.url ?? '/');
    inFlight.add(res);
    res.once('close', () => {
      inFlight.delete(res);
      log.debug({ method, path: pathname, status: res.statusCode, ms: Number(process.hrtime.bigint() - started) / 1e6 }, 'admin request');
      // The connection is idle now, unless its answer said "close" and Node is ending it.
      if (closing) server.closeIdleConnections();
    });
    if (closing) res.setHeader('connection', 'close');
    try {
      if (config.kind === 'tcp') refuseBrowserRequests(req, config.host, tokenHash !== null);
      // The dashboard's files hold no data, and a browser cannot send a token with a page load.
      const asset = method === 'GET' || method === 'HEAD' ? pageFile(pathname, req) : null;
      if (asset !== null) {
        res.writeHead(200, asset.headers);
        res.end(asset.body);
        return;
      }
      if (tokenHash) authorize(req, tokenHash);
      const match = pathname.startsWith('/') ? matchRoute(method, pathname) : ({ kind: 'not-found' } as const);
      if (match.kind === 'not-found') throw httpError('LB4_NOT_FOUND', `no such endpoint: ${pathname} (GET / lists them)`);
      if (match.kind === 'wrong-method') {
        throw httpError('LB4_METHOD_NOT_ALLOWED', `${method} is not allowed on ${pathname} (allowed: ${match.allow.join(', ')})`, { headers: { allow: match.allow.join(', ') } });
      }
      checkQuery(match.handler, query);
      send(res, await match.handler.run({ ctx, id: match.id, query, body: () => readJsonBody(req) }));
    } catch (err) {
      const reply = errorReply(err);
      if (!reply.expected) log.error({ err, method, path: pathname }, 'admin request failed');
      else if (reply.status === 401) log.warn({ method, path: pathname, client: req.socket.remoteAddress }, 'admin request refused: no or wrong token');
      if (res.headersSent) {
        res.destroy();
        return;
      }
      sendJson(res, reply.status, reply.body, reply.headers);
    }
  };

  const server = createServer(
    { requestTimeout: requestTimeoutMs, headersTimeout: headersTimeoutMs, keepAliveTimeout: keepAliveTimeoutMs, connectionsCheckingInterval: checkIntervalMs, maxHeaderSize: maxHeaderBytes },
    (req, res) => void handle(req, res),
  );
  // Past the limit Node accepts and closes at once: the descriptor is given back immediately.
  const descriptorLimit = openFileLimit();
  const maxConnections = adminConnectionLimit(config.maxConnections, descriptorLimit);
  if (maxConnections < config.maxConnections) {
    log.warn({ maxConnections, configured: config.maxConnections, descriptorLimit }, 'admin API connection limit lowered to a quarter of the descriptor limit (ulimit -n)');
  }
  server.maxConnections = maxConnections;
  let dropped = 0;
  let droppedLoggedAt = -Infinity;
  server.on('drop', () => {
    dropped++;
    const now = Date.now();
    if (now - droppedLoggedAt < dropLogIntervalMs) return;
    droppedLoggedAt = now;
    log.warn({ maxConnections, dropped }, 'admin API at its connection limit: new connections are closed');
  });
  // A client that misbehaves below HTTP gets a short answer where one helps (431 for a URL or
  // headers too large, 400 for what is not HTTP), then its socket is closed; a reset or a timeout
  // just closes it. None of it is the server's error.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : err.code?.startsWith('HPE_') ? '400 Bad Request' : null;
    if (status !== null && socket.writable) {
      socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
      // A client that never reads its answer does not keep the descriptor.
      setTimeout(() => socket.destroy(), checkIntervalMs).unref();
      return;
    }
    socket.destroy();
  });

  if (config.kind === 'unix') await removeStaleSocket(config.path);
  try {
    await listen(server, config);
  } catch (err) {
    metrics.close();
    throw err;
  }
  server.unref();

  let url: string;
  let socketIno: number | null = null;
  if (config.kind === 'unix') {
    try {
      // Without a token, whoever can connect controls the balancer: owner only.
      await chmod(config.path, 0o600);
      socketIno = (await lstat(config.path)).ino;
    } catch (err) {
      metrics.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      throw err;
    }
    url = `unix:${config.path}`;
  } else {
    const address = server.address() as AddressInfo;
    url = `http://${formatHostPort(address.address, address.port)}`;
  }

  let closed: Promise<void> | null = null;
  return {
    url,
    close() {
      if (closed) return closed;
      closing = true;
      metrics.close();
      // Answers still owed (a reload that restarts this server is one) go out with
      // "Connection: close", so Node ends those connections once they are written.
      for (const res of inFlight) if (!res.headersSent) res.setHeader('connection', 'close');
      closed = new Promise<void>((resolve) => {
        const grace = setTimeout(() => server.closeAllConnections(), closeGraceMs).unref();
        server.close(() => {
          clearTimeout(grace);
          resolve();
        });
        if (inFlight.size === 0) server.closeAllConnections();
        else server.closeIdleConnections();
      }).then(async () => {
        // Node removes the socket file itself; this covers the case where it could not, and
        // never touches a socket another process has put at the same path since.
        if (config.kind !== 'unix' || socketIno === null) return;
        try {
          if ((await lstat(config.path)).ino === socketIno) await unlink(config.path);
        } catch {
          // Already gone.
        }
      });
      return closed;
    },
  };
}

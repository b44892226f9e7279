/**
 * The coordinator's HTTP endpoint: Prometheus scrapes it and people open it.
 *
 *   GET /                   status page (status-page/index.html)
 *   GET /status.css         its stylesheet (status-page/status.css)
 *   GET /status.js          its script (status-page/status.js)
 *   GET /api/status         the StatusObserver's snapshot as JSON
 *   GET /metrics            the run's registry in Prometheus text format
 *   GET /samples/latest.png the newest sample grid PNG (404 before the first)
 *   anything else          404 (405 for other methods on these paths)
 *
 * The page's three files are read into memory when the server starts
 * (loadStatusPageAssets in status-page.ts), which fails, naming the file, if
 * one is missing. No path from a request ever reaches the file system: the
 * page files come from that fixed in-memory map and the sample grid from the
 * path the StatusObserver holds. The page is served under a strict CSP
 * (PAGE_CSP: own-origin script and style files only, no 'unsafe-inline').
 * A failing request is answered with 500 and reported through `onError`;
 * nothing here may take the coordinator down.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { BindError, ConfigError } from '../shared/errors.js';
import { SAMPLE_URL_PATH, loadStatusPageAssets, type StatusObserver, type StatusPageAsset } from './status-page.js';

export interface HttpServerOptions {
  /** Interface to bind, e.g. 127.0.0.1 (the CLI's --metrics-host default) or 0.0.0.0. */
  host: string;
  /** TCP port; 0 lets the OS pick a free one (the returned `port` says which). */
  port: number;
  /** The registry the PrometheusObserver writes to. */
  registry: Registry;
  status: StatusObserver;
  /** Called with errors of individual requests or of the server after it started. Default: ignore. */
  onError?: (err: unknown) => void;
  /** Folder holding index.html, status.css and status.js (default STATUS_PAGE_DIR); tests point it elsewhere. */
  statusPageDir?: string;
}

export interface RunningHttpServer {
  /** Base URL, e.g. http://127.0.0.1:9464 */
  url: string;
  port: number;
  /** Stops listening and drops open (keep-alive) connections. Idempotent. */
  close(): Promise<void>;
}

const SECURITY_HEADERS = {
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
} as const;

// The page loads only its own script and stylesheet files from this server
// (no CDN, nothing inline), fetches /api/status and shows the sample grid, so
// everything else is locked out. img-src allows data: for the empty favicon.
export const PAGE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

function send(res: ServerResponse, status: number, contentType: string, body: string | Buffer, extra: Record<string, string> = {}): void {
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    'Content-Type': contentType,
    'Content-Length': String(Buffer.byteLength(body)),
    ...extra,
  });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

/** True when the request's If-None-Match lists `etag` (weak or strong) or is `*`. */
function notModified(req: IncomingMessage, etag: string): boolean {
  const header = req.headers['if-none-match'];
  if (!header) return false;
  return header.split(',').some((t) => {
    const tag = t.trim();
    return tag === '*' || tag.replace(/^W\//, '') === etag;
  });
}

/**
 * A page file. `no-cache` lets the browser keep a copy but revalidate it on
 * every page load (a 304 when its ETag still matches), so a coordinator of a
 * newer version never meets a stale script from an older one on the same port.
 */
function sendAsset(req: IncomingMessage, res: ServerResponse, asset: StatusPageAsset, extra: Record<string, string> = {}): void {
  const headers = { ETag: asset.etag, 'Cache-Control': 'no-cache', ...extra };
  if (notModified(req, asset.etag)) {
    res.writeHead(304, { ...SECURITY_HEADERS, ...headers });
    return void res.end();
  }
  send(res, 200, asset.contentType, asset.body, headers);
}

function formatUrl(host: string, port: number): string {
  const h = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `http://${h.includes(':') ? `[${h}]` : h}:${port}`;
}

/** Starts the server; rejects with a BindError (naming --metrics-port) when the address cannot be bound. */
export async function startHttpServer(opts: HttpServerOptions): Promise<RunningHttpServer> {
  const { host, port, registry, status } = opts;
  const onError = opts.onError ?? (() => {});
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ConfigError(`metrics port must be an integer 0-65535, got ${port}`);
  }
  // Before binding: a missing page file fails the start, not the first visit.
  const assets = loadStatusPageAssets(opts.statusPageDir);
  const pageRoutes = Object.fromEntries(
    [...assets].map(([urlPath, asset]) => [
      urlPath,
      // The CSP governs the document; the script and stylesheet need none of their own.
      (req: IncomingMessage, res: ServerResponse) => sendAsset(req, res, asset, urlPath === '/' ? { 'Content-Security-Policy': PAGE_CSP } : {}),
    ]),
  );

  const routes: Record<string, (req: IncomingMessage, res: ServerResponse) => Promise<void> | void> = {
    ...pageRoutes,
    '/api/status': (_req, res) => send(res, 200, 'application/json; charset=utf-8', status.snapshotJson(), { 'Cache-Control': 'no-store' }),
    '/metrics': async (_req, res) => {
      const body = await registry.metrics();
      send(res, 200, registry.contentType, body, { 'Cache-Control': 'no-store' });
    },
    [SAMPLE_URL_PATH]: async (req, res) => {
      const path = status.latestSamplePath();
      if (!path) return send(res, 404, 'text/plain; charset=utf-8', 'no sample grid has been written yet\n');
      let size: number;
      try {
        const st = await stat(path);
        if (!st.isFile()) throw new Error('not a file');
        size = st.size;
      } catch {
        return send(res, 404, 'text/plain; charset=utf-8', 'the latest sample grid file is gone\n');
      }
      res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': 'image/png', 'Content-Length': String(size), 'Cache-Control': 'no-cache' });
      if (req.method === 'HEAD') return void res.end();
      // The sample writer may replace the file while it is read; a short read
      // then ends the response early, which the page retries on the next poll.
      await new Promise<void>((resolve) => {
        const rs = createReadStream(path);
        rs.on('error', (e) => {
          onError(e);
          res.destroy();
          resolve();
        });
        rs.on('end', resolve);
        rs.pipe(res);
      });
    },
  };

  const server = createServer((req, res) => {
    const pathname = (req.url ?? '/').split('?', 1)[0]!;
    const handler = Object.prototype.hasOwnProperty.call(routes, pathname) ? routes[pathname] : undefined;
    if (!handler) return send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n', { Allow: 'GET, HEAD' });
    }
    Promise.resolve()
      .then(() => handler(req, res))
      .catch((e: unknown) => {
        onError(e);
        if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n');
        else res.destroy();
      });
  });
  // Slow or idle clients must not hold sockets forever.
  server.requestTimeout = 30_000;
  server.headersTimeout = 15_000;
  server.keepAliveTimeout = 10_000;
  server.on('clientError', (err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
    onError(err);
  });

  await new Promise<void>((resolve, reject) => {
    const fail = (e: NodeJS.ErrnoException) => {
      server.off('listening', ok);
      const why = e.code === 'EADDRINUSE' ? 'is already in use' : e.code === 'EACCES' ? 'needs privileges' : e.code === 'EADDRNOTAVAIL' ? 'is not an address of this machine' : `failed (${e.code ?? e.message})`;
      reject(new BindError(`--metrics-port ${port} (--metrics-host ${host}): cannot serve metrics there: the address ${why}; choose another --metrics-host/--metrics-port, or --metrics-port 0 to turn the server off`, { cause: e }));
    };
    const ok = () => {
      server.off('error', fail);
      resolve();
    };
    server.once('error', fail);
    server.once('listening', ok);
    server.listen({ host, port });
  });
  server.on('error', onError);

  const bound = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    url: formatUrl(host, bound),
    port: bound,
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

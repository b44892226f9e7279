/**
 * The coordinator's HTTP endpoint: Prometheus scrapes it and people open it.
 *
 *   GET /                   status page (status-page-html.ts)
 *   GET /api/status         the StatusObserver's snapshot as JSON
 *   GET /metrics            the run's registry in Prometheus text format
 *   GET /samples/latest.png the newest sample grid PNG (404 before the first)
 *   anything else          404 (405 for other methods on these paths)
 *
 * It serves only what the observers hold: no path from the request ever
 * reaches the file system. A failing request is answered with 500 and
 * reported through `onError`; nothing here may take the coordinator down.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { BindError, ConfigError } from '../shared/errors.js';
import { SAMPLE_URL_PATH, type StatusObserver } from './status-page.js';

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

// The page is one document with inline script and style, loading only from
// this server (no CDN), so a CSP can lock everything else out.
const PAGE_CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'";

function send(res: ServerResponse, status: number, contentType: string, body: string | Buffer, extra: Record<string, string> = {}): void {
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    'Content-Type': contentType,
    'Content-Length': String(Buffer.byteLength(body)),
    ...extra,
  });
  res.end(res.req.method === 'HEAD' ? undefined : body);
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

  const routes: Record<string, (req: IncomingMessage, res: ServerResponse) => Promise<void> | void> = {
    '/': (_req, res) => send(res, 200, 'text/html; charset=utf-8', status.pageHtml(), { 'Content-Security-Policy': PAGE_CSP, 'Cache-Control': 'no-cache' }),
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

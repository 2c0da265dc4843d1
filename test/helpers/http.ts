import { readFileSync } from 'node:fs';
import net from 'node:net';

/** A raw HTTP/1.1 request fixture, split into its parts (header names as written). */
export interface RawRequest {
  readonly bytes: Buffer;
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body: string;
}

export function loadRequestFixture(name: string): RawRequest {
  const bytes = readFileSync(new URL(`../fixtures/${name}`, import.meta.url));
  const text = bytes.toString('utf8');
  const split = text.indexOf('\r\n\r\n');
  const [requestLine, ...headerLines] = text.slice(0, split).split('\r\n');
  const [method, path] = (requestLine as string).split(' ') as [string, string];
  const headers: Record<string, string> = {};
  for (const line of headerLines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon)] = line.slice(colon + 1).trim();
  }
  return { bytes, method, path, headers, body: text.slice(split + 4) };
}

export interface RawResponse {
  readonly status: number;
  /** Header names lower-cased. */
  readonly headers: Record<string, string>;
  readonly body: string;
}

/** Sends exact bytes over a TCP connection and reads one response (Connection: close). */
export async function sendRaw(port: number, bytes: Buffer): Promise<RawResponse> {
  const text = bytes.toString('latin1').replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n');
  const socket = net.connect(port, '127.0.0.1');
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  // Write without half-closing: the server ends the connection after its answer (Connection: close).
  socket.write(Buffer.from(text, 'latin1'));
  await new Promise<void>((resolve, reject) => {
    socket.on('close', () => resolve());
    socket.on('error', reject);
  });
  return parseResponse(Buffer.concat(chunks));
}

/** One HTTP/1.1 response as read off the wire: status, headers (names lower-cased), body. */
export function parseResponse(bytes: Buffer): RawResponse {
  const response = bytes.toString('utf8');
  const split = response.indexOf('\r\n\r\n');
  const [statusLine, ...lines] = response.slice(0, split).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status: Number((statusLine ?? '').split(' ')[1]), headers, body: response.slice(split + 4) };
}

/** A time as Go's RFC 3339 (nano) formatting writes it: trailing zeros of the fraction trimmed. */
export function goTime(date: Date): string {
  return date.toISOString().replace(/\.?0+Z$/, 'Z');
}

/**
 * The fixture as Falcosidekick would send it at `now`: the payload's `time` and `Ce-Time` set to
 * `now` (the fixtures were captured in 2025 and alerts older than the age guard are skipped),
 * Content-Length recomputed; every other byte as captured.
 */
export function retimed(request: RawRequest, now: Date): Buffer {
  const text = request.bytes.toString('utf8');
  const old = /"time":"([^"]+)"/.exec(request.body)?.[1] as string;
  const body = request.body.replace(`"time":"${old}"`, `"time":"${goTime(now)}"`);
  const head = text
    .slice(0, text.indexOf('\r\n\r\n'))
    .replace(/^Ce-Time: .*$/m, `Ce-Time: ${goTime(now)}`)
    .replace(/^Content-Length: \d+$/m, `Content-Length: ${Buffer.byteLength(body)}`);
  return Buffer.from(`${head}\r\n\r\n${body}`, 'utf8');
}

import net from 'node:net';

/** One HTTP request as bytes go on the wire: header lines as written (latin1), the body as bytes. */
export interface WireRequest {
  /** Header lines after the request line, in order (Host, framing and Connection are added). */
  readonly headers: readonly (readonly [string, string])[];
  readonly body: Buffer;
  /** Send the body with Transfer-Encoding: chunked instead of Content-Length. */
  readonly chunked: boolean;
}

export interface WireResponse {
  readonly status: number;
  /** Header names lower-cased. */
  readonly headers: Record<string, string>;
  readonly body: Buffer;
}

function chunk(body: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (let at = 0; at < body.length; at += 65_536) {
    const piece = body.subarray(at, at + 65_536);
    parts.push(Buffer.from(`${piece.length.toString(16)}\r\n`, 'latin1'), piece, Buffer.from('\r\n', 'latin1'));
  }
  parts.push(Buffer.from('0\r\n\r\n', 'latin1'));
  return Buffer.concat(parts);
}

/** The exact bytes of a request: POST / HTTP/1.1, its headers, framing, Connection: close, the body. */
export function toBytes(request: WireRequest): Buffer {
  const lines = ['POST / HTTP/1.1', 'Host: drop.falco-drop.svc.cluster.local', ...request.headers.map(([name, value]) => `${name}: ${value}`)];
  lines.push(request.chunked ? 'Transfer-Encoding: chunked' : `Content-Length: ${request.body.length}`, 'Connection: close', '', '');
  return Buffer.concat([Buffer.from(lines.join('\r\n'), 'latin1'), request.chunked ? chunk(request.body) : request.body]);
}

function dechunk(body: Buffer): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = body.indexOf('\r\n', at);
    if (eol < 0) break;
    const size = parseInt(body.subarray(at, eol).toString('latin1'), 16);
    if (!(size > 0)) break;
    parts.push(body.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
  return Buffer.concat(parts);
}

function parseResponse(bytes: Buffer): WireResponse | undefined {
  const split = bytes.indexOf('\r\n\r\n');
  if (split < 0) return undefined;
  const [statusLine, ...lines] = bytes.subarray(0, split).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '')?.[1]);
  if (!Number.isInteger(status)) return undefined;
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const rest = bytes.subarray(split + 4);
  let body = rest;
  if (/chunked/i.test(headers['transfer-encoding'] ?? '')) body = dechunk(rest);
  else if (headers['content-length'] !== undefined) body = rest.subarray(0, Number(headers['content-length']));
  return { status, headers, body };
}

/**
 * Sends exact bytes on a new TCP connection and reads the one answer (the request says
 * Connection: close). Resolves with an error text when no HTTP answer came: the connection was
 * closed or reset without one, or nothing came within `timeoutMs`.
 */
export async function exchange(port: number, bytes: Buffer, timeoutMs: number): Promise<WireResponse | { readonly error: string }> {
  const socket = net.connect(port, '127.0.0.1');
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  let failure: string | undefined;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      failure = `no answer within ${timeoutMs} ms`;
      socket.destroy();
    }, timeoutMs);
    socket.on('error', (error) => {
      // The server may answer (413, 431) and close before reading the whole body: keep what came.
      failure ??= `connection error: ${(error as NodeJS.ErrnoException).code ?? error.message}`;
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.write(bytes, () => undefined);
  });
  const response = parseResponse(Buffer.concat(chunks));
  if (response) return response;
  return { error: failure ?? `the connection closed without an HTTP answer (${Buffer.concat(chunks).length} bytes came)` };
}

/** A request written for a human: header lines, then the body with long runs folded and bytes that are not UTF-8 as \xNN. */
export function describeRequest(request: WireRequest): string {
  const head = request.headers.map(([n, v]) => `${n}: ${JSON.stringify(v).slice(1, -1)}`).join('\n');
  const bytes = request.body;
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const out: string[] = [];
  for (let at = 0; at < bytes.length; ) {
    const b = bytes[at] as number;
    if (b < 0x80) {
      out.push(String.fromCharCode(b));
      at++;
      continue;
    }
    const size = b >= 0xc2 && b < 0xe0 ? 2 : b >= 0xe0 && b < 0xf0 ? 3 : b >= 0xf0 && b < 0xf5 ? 4 : 0;
    try {
      if (size === 0) throw new Error('not a lead byte');
      out.push(decoder.decode(bytes.subarray(at, at + size)));
      at += size;
    } catch {
      out.push(`\\x${b.toString(16).padStart(2, '0')}`);
      at++;
    }
  }
  const text = out.join('');
  const folded = text.replace(/(.)\1{39,}/gsu, (run, ch: string) => `<${JSON.stringify(ch)} x ${[...run].length}>`);
  const shown = folded.length > 3000 ? `${folded.slice(0, 3000)}… (${folded.length} characters)` : folded;
  const framing = request.chunked ? 'Transfer-Encoding: chunked' : `Content-Length: ${request.body.length}`;
  return `${head}\n${framing}\n\n${shown}`;
}

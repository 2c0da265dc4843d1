import net from 'node:net';

export interface Exchange {
  readonly status: number;
  /** Header names lower-cased. */
  readonly headers: Record<string, string>;
  readonly body: string;
}

/**
 * Writes exactly `bytes` (no header added, unlike sendRaw) and reads until the server closes
 * the connection: for requests Node itself refuses, after which it closes.
 */
export async function exchange(port: number, bytes: Buffer | string): Promise<Exchange> {
  const socket = net.connect(port, '127.0.0.1');
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  // The server may close while the request is still being written; what it answered is what counts.
  socket.on('error', () => {});
  socket.write(bytes);
  await new Promise<void>((resolve) => socket.on('close', () => resolve()));
  const response = Buffer.concat(chunks).toString('utf8');
  const split = response.indexOf('\r\n\r\n');
  const [statusLine, ...lines] = response.slice(0, split).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status: Number((statusLine ?? '').split(' ')[1]), headers, body: response.slice(split + 4) };
}

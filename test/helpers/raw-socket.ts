import net from 'node:net';
import { parseResponse, type RawResponse } from './http.ts';

export type Exchange = RawResponse;

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
  return parseResponse(Buffer.concat(chunks));
}

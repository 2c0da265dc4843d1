import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { DropError } from './errors.ts';

/**
 * Reads a request's body as UTF-8 text, each chunk decoded as it arrives. Fastify's own
 * reading keeps every chunk, then copies them into one buffer and decodes that: for a body near
 * 1 MiB, a second megabyte outside V8's heap per request, which the C allocator keeps after it
 * is freed. Decoded as they come, the socket's chunks are garbage at once and the text lives in
 * V8's heap alone. The limits are Fastify's: a declared length over `limit` is refused unread
 * (413), a body that grows past it is refused as it does (413), and one that ends shorter or
 * longer than it declared is a 400, as is one whose stream fails.
 */
export function readBodyText(payload: Readable, declaredLength: string | undefined, limit: number, done: (error: Error | null, body?: string) => void): void {
  const declared = declaredLength === undefined ? Number.NaN : Number(declaredLength);
  if (declared > limit) return done(tooLarge(limit));
  // A body of one chunk (every ignored alert) is decoded once, as Fastify does; from a second
  // chunk on, each is decoded as it comes.
  let first: Buffer | undefined;
  let decoder: StringDecoder | undefined;
  let received = 0;
  let text = '';
  const finish = (error: Error | null, body?: string): void => {
    payload.removeListener('data', onData);
    payload.removeListener('end', onEnd);
    payload.removeListener('error', onError);
    done(error, body);
  };
  const onData = (chunk: Buffer): void => {
    received += chunk.length;
    if (received > limit) return finish(tooLarge(limit));
    if (!decoder) {
      if (!first) {
        first = chunk;
        return;
      }
      decoder = new StringDecoder('utf8');
      text = decoder.write(first);
      first = undefined;
    }
    text += decoder.write(chunk);
  };
  const onEnd = (): void => {
    if (!Number.isNaN(declared) && received !== declared) return finish(new DropError('DROP_NOT_AN_EVENT', 'Request body size did not match Content-Length'));
    finish(null, decoder ? text + decoder.end() : (first?.toString('utf8') ?? ''));
  };
  // The connection broke or the stream failed: Fastify answers 400, and so does drop.
  const onError = (error: Error): void => finish(new DropError('DROP_NOT_AN_EVENT', `the body could not be read: ${error.message}`, { cause: error }));
  payload.on('data', onData);
  payload.on('end', onEnd);
  payload.on('error', onError);
  payload.resume();
}

function tooLarge(limit: number): DropError {
  return new DropError('DROP_BODY_TOO_LARGE', `the body is larger than ${limit} bytes`);
}

import { Duplex } from 'node:stream';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { answerClientError } from '../src/app.ts';
import { createTestApp } from './helpers/app.ts';
import { exchange } from './helpers/raw-socket.ts';

async function listening(t: Test) {
  const drop = await createTestApp();
  t.teardown(() => drop.close());
  await drop.app.listen({ port: 0, host: '127.0.0.1' });
  return { drop, port: (drop.app.server.address() as { port: number }).port };
}

t.test('headers over Node\'s limit are answered 431 DROP_HEADERS_TOO_LARGE in JSON, and the connection is closed', async (t) => {
  const { drop, port } = await listening(t);
  const request = `POST / HTTP/1.1\r\nHost: drop\r\nCe-Specversion: 1.0\r\nCe-Id: big-headers\r\nCe-Source: https://falco.org\r\nX-Junk: ${'j'.repeat(20_000)}\r\nContent-Length: 2\r\n\r\n{}`;
  const res = await exchange(port, request);
  t.equal(res.status, 431);
  t.equal(res.headers.connection, 'close');
  t.equal(res.headers['content-type'], 'application/json; charset=utf-8');
  t.equal(Number(res.headers['content-length']), Buffer.byteLength(res.body));
  t.same(JSON.parse(res.body), { error: { code: 'DROP_HEADERS_TOO_LARGE', message: 'the request line and headers are larger than Node accepts (16 KiB)' } });
  const line = drop.logs.find((l) => l.code === 'DROP_HEADERS_TOO_LARGE');
  t.match(line, { level: 40, status: 431, msg: /^rejected: / }, 'a final 4xx is a warning');
});

t.test('a malformed request is answered 400 DROP_BAD_REQUEST in JSON, logged with the CloudEvent it names', async (t) => {
  const { drop, port } = await listening(t);
  const request = 'POST / HTTP/1.1\r\nHost: drop\r\nCe-Id: bad-length\r\nCe-Source: https://falco.org\r\nContent-Length: twelve\r\n\r\n';
  const res = await exchange(port, request);
  t.equal(res.status, 400);
  t.equal(res.headers.connection, 'close');
  t.match(JSON.parse(res.body), { error: { code: 'DROP_BAD_REQUEST', message: /^the request is not valid HTTP\/1\.1 \(HPE_/ } });
  t.match(drop.logs.find((l) => l.code === 'DROP_BAD_REQUEST'), { level: 40, status: 400, ce: { id: 'bad-length', source: 'https://falco.org' } });
  const garbage = await exchange(port, 'HELLO\r\n\r\n');
  t.equal(garbage.status, 400);
  t.equal(JSON.parse(garbage.body).error.code, 'DROP_BAD_REQUEST');
  t.notOk(drop.logs.filter((l) => l.code === 'DROP_BAD_REQUEST')[1]?.ce, 'no CloudEvent named, none logged');
});

/** A socket that records what is written to it. */
function recordingSocket() {
  const written: string[] = [];
  const socket = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, done) {
      written.push(chunk.toString('utf8'));
      done();
    },
  });
  return { socket, written };
}

t.test('a request that never finished arriving is 408 DROP_REQUEST_TIMEOUT, which the Broker retries', async (t) => {
  const { socket, written } = recordingSocket();
  const closed = new Promise((resolve) => socket.on('close', resolve));
  answerClientError(pino({ level: 'silent' }), Object.assign(new Error('timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' }), socket);
  // The client finishes sending: the connection is closed then, not before.
  await new Promise((resolve) => setImmediate(resolve));
  t.notOk(socket.destroyed, 'kept open while the client may still be sending');
  socket.push(null);
  await closed;
  t.match(written.join(''), /^HTTP\/1\.1 408 Request Timeout\r\n[^]*connection: close\r\n\r\n\{"error":\{"code":"DROP_REQUEST_TIMEOUT"/);
});

t.test('a client error without a code is named by its message', async (t) => {
  const { socket, written } = recordingSocket();
  const closed = new Promise((resolve) => socket.on('close', resolve));
  // A client that never stops sending is cut off after the linger time.
  answerClientError(pino({ level: 'silent' }), new Error('Parse Error: odd'), socket, 20);
  await closed;
  t.match(written.join(''), /^HTTP\/1\.1 400 Bad Request\r\n[^]*"message":"the request is not valid HTTP\/1\.1 \(Parse Error: odd\)"/);
});

t.test('nothing is written to a connection that was reset or can no longer be written', async (t) => {
  const reset = recordingSocket();
  answerClientError(pino({ level: 'silent' }), Object.assign(new Error('reset'), { code: 'ECONNRESET' }), reset.socket);
  t.same(reset.written, []);
  t.notOk(reset.socket.destroyed, 'Node closes a reset connection itself');
  const ended = recordingSocket();
  ended.socket.end();
  answerClientError(pino({ level: 'silent' }), Object.assign(new Error('parse'), { code: 'HPE_INVALID_METHOD' }), ended.socket);
  t.same(ended.written, []);
  t.ok(ended.socket.destroyed, 'the connection is closed');
  const destroyed = recordingSocket();
  destroyed.socket.destroy();
  answerClientError(pino({ level: 'silent' }), new Error('no code'), destroyed.socket);
  t.same(destroyed.written, []);
});

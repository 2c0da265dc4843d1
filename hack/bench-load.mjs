// The load generator of `npm run bench`: keep-alive connections over plain sockets, each
// sending one request, reading its answer and sending the next (no pipelining), with every
// request's time from its first byte written to its answer's last byte read.
//
// Written for the bench rather than taken from autocannon: on a 2-core machine the generator
// shares the CPU with the server it measures, and this one does nothing per request but build
// one buffer (a fresh CloudEvent id each time, as Falcosidekick sends) and find the end of a
// small answer; the same code also times a cold start to the first answered alert, so every
// figure comes from one client. It reads only what the three servers answer: a status line,
// headers, and a body of `content-length` bytes (or chunked, up to its last chunk).
import net from 'node:net';

/**
 * A Falcosidekick CloudEvent in binary mode (test/fixtures/falcosidekick-cloudevent.http) that
 * no rule of the default policy matches: `request(i)` is the whole HTTP/1.1 request with a
 * fresh Ce-Id per `i`.
 */
export function ignoredAlertRequest(rule = 'Write below etc') {
  const time = new Date().toISOString();
  const body = Buffer.from(
    `{"uuid":"8e2f6a7c-1d2b-4c3e-9f40-5a6b7c8d9e01","output":"${time.slice(11, 19)}: Error File below /etc opened for writing (file=/etc/passwd pcmdline=bash command=vi /etc/passwd container_id=2d90926af63e container_name=mysql)",` +
      `"priority":"Error","rule":${JSON.stringify(rule)},"time":"${time}","output_fields":{"container.id":"2d90926af63e","container.name":"mysql","evt.time":1749720067118402960,"evt.type":"openat",` +
      `"fd.name":"/etc/passwd","k8s.ns.name":"default","k8s.pod.name":"mysql-db-7d59548d75-g9msc","proc.cmdline":"vi /etc/passwd","proc.name":"vi","user.loginuid":-1,"user.name":"root"},` +
      `"source":"syscall","tags":["T1098","filesystem","mitre_persistence"],"hostname":"worker-node-2"}`,
  );
  const head = (id) =>
    'POST / HTTP/1.1\r\nHost: drop.falco.svc.cluster.local\r\nUser-Agent: Go-http-client/1.1\r\n' +
    `Content-Length: ${body.length}\r\nCe-Eventsource: syscall\r\nCe-Hostname: worker-node-2\r\nCe-Id: ${id}\r\n` +
    `Ce-Priority: Error\r\nCe-Rule: ${rule}\r\nCe-Source: https://falco.org\r\nCe-Specversion: 1.0\r\nCe-Time: ${time}\r\n` +
    'Ce-Type: falco.rule.output.v1\r\nContent-Type: application/json\r\nAccept-Encoding: gzip\r\n\r\n';
  const prefix = `bench-${process.pid}-${Date.now()}-`;
  return (i) => Buffer.concat([Buffer.from(head(`${prefix}${i}`), 'latin1'), body]);
}

const crlf2 = Buffer.from('\r\n\r\n');
const lastChunk = Buffer.from('0\r\n\r\n');

/**
 * Finds the end of the first whole answer in `buf`: { end, status }, or undefined while it is
 * still arriving. Assumes the small answers these servers send.
 */
function answerEnd(buf) {
  const headEnd = buf.indexOf(crlf2);
  if (headEnd === -1) return undefined;
  const head = buf.toString('latin1', 0, headEnd);
  const status = Number(head.slice(9, 12));
  const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
  if (length) {
    const end = headEnd + 4 + Number(length[1]);
    return buf.length >= end ? { end, status } : undefined;
  }
  if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
    const last = buf.indexOf(lastChunk, headEnd + 4);
    return last === -1 ? undefined : { end: last + lastChunk.length, status };
  }
  return { end: headEnd + 4, status };
}

/**
 * Sends requests from `connections` keep-alive connections until `count` are answered or
 * `seconds` have passed. Returns what was answered, the rate, and latency percentiles (ms).
 */
export async function load({ port, connections = 32, count = Infinity, seconds = Infinity, request }) {
  const latencies = [];
  const statuses = new Map();
  let sent = 0;
  let errors = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  const one = () =>
    new Promise((resolve) => {
      const socket = net.connect({ port, host: '127.0.0.1', noDelay: true });
      let buf = Buffer.alloc(0);
      let t0 = 0;
      const next = () => {
        if (sent >= count || performance.now() >= deadline) {
          socket.end();
          resolve();
          return;
        }
        const i = sent++;
        t0 = performance.now();
        socket.write(request(i));
      };
      socket.on('connect', next);
      socket.on('data', (chunk) => {
        buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
        const answer = answerEnd(buf);
        if (!answer) return;
        latencies.push(performance.now() - t0);
        statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
        buf = buf.subarray(answer.end);
        next();
      });
      socket.on('error', () => {
        errors++;
        resolve();
      });
      socket.on('close', resolve);
    });
  await Promise.all(Array.from({ length: connections }, one));
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (p) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? NaN;
  return { answered: latencies.length, errors, statuses, seconds: elapsed, rps: latencies.length / elapsed, p50: at(0.5), p99: at(0.99) };
}

/**
 * Sends `request` until it is answered 2xx, retrying every millisecond while nothing listens
 * (connection refused) or the answer is not yet a 2xx. Resolves with the status.
 */
export async function firstAnswer(port, request) {
  for (;;) {
    const status = await new Promise((resolve) => {
      const socket = net.connect({ port, host: '127.0.0.1', noDelay: true });
      let buf = Buffer.alloc(0);
      socket.on('connect', () => socket.write(request));
      socket.on('data', (chunk) => {
        buf = Buffer.concat([buf, chunk]);
        const answer = answerEnd(buf);
        if (!answer) return;
        socket.destroy();
        resolve(answer.status);
      });
      socket.on('error', () => resolve(0));
      socket.on('close', () => resolve(0));
    });
    if (status >= 200 && status < 300) return status;
    await new Promise((r) => setTimeout(r, 1));
  }
}

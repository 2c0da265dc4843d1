/**
 * Fuzzing the built service (dist/main.js) over raw HTTP, against the fake Kubernetes API.
 *
 * fast-check (fixed seed, bounded count) generates requests as data (test/helpers/fuzz-requests.ts),
 * mostly Falcosidekick binary CloudEvents with one to three things wrong, plus structured events,
 * batches of 0 to 1,000, plain Falco JSON and garbage; each is rendered to exact bytes at the
 * moment it is sent (times stay near now) and sent alone on its own connection, so every request
 * the fake API receives in between is caused by it.
 *
 * The oracle (test/helpers/fuzz-oracle.ts) is an independent reading of the bytes, written from
 * the README, contract.md and issue 7 and not from src/: JSON.parse, field types, RFC 3339
 * times, RFC 1123 names, the protected namespaces, the policy below. It says which pods the
 * request may make drop ask the API about (a valid alert about a valid pod name in an
 * unprotected namespace), which alerts must reach the API (valid beyond doubt, fresh, matching),
 * and whether it is a single falco.rule.output.v1 event or plain Falco JSON whose payload is
 * invalid. Where the documents leave a reading open it allows the API call but does not require it.
 *
 * Properties, checked after every request:
 *  1. the process is still running;
 *  2. no 5xx and no connection closed without an answer (the fake API stays healthy);
 *  3. every API request concerns a pod the oracle allows (its pod, its namespace, Events about it);
 *  4. every 2xx with a body is a CloudEvent (binary ce-* headers, or a structured body);
 *  5. never loses an alert: an alert that must reach the API reads its pod, unless the same
 *     delivery was sent before (the redelivery memory answers it), the answer makes the Broker
 *     retry (404, 408, 409, 429, 5xx, no answer), or it is in a batch dead-lettered whole (4xx);
 *  6. never loses an alert: an invalid falco.rule.output.v1 event or plain payload is not a 2xx
 *     (a 2xx is final; a 400 is dead-lettered).
 */
import t from 'tap';
import type { AttrEdit, FieldEdit, HeaderEdit, PayloadSpec, RequestSpec } from './helpers/fuzz-requests.ts';

// 500 requests take ~10-60 s on a loaded 2-core machine; fast-check's own time limit (below) is
// the safety net. Set before the heavy imports load (the Kubernetes client alone takes seconds).
t.setTimeout(180_000);
const { default: fc } = await import('fast-check');
const { startFuzzTarget } = await import('./helpers/fuzz-harness.ts');
const { requestSpec } = await import('./helpers/fuzz-requests.ts');

const target = await startFuzzTarget();
t.teardown(() => target.close());

t.test('the service survives and keeps its promises under fuzzed requests (seed 42)', async (t) => {
  const started = Date.now();
  await fc.assert(
    fc.asyncProperty(requestSpec, async (spec) => {
      const probe = await target.probe(spec);
      if (probe.problems.length > 0) throw new Error(target.explain(probe));
    }),
    { seed: 42, numRuns: 500, interruptAfterTimeLimit: 90_000, markInterruptAsFailure: false },
  );
  t.comment(`fuzzing took ${Date.now() - started} ms`);
  t.ok(target.alive(), 'still running at the end');
});

/** A Falcosidekick alert about default/mysql-db-7d59548d75-g9msc (which the fake API holds), with edits. */
function alert(edits: FieldEdit[] = [], headers: HeaderEdit[] = []): RequestSpec {
  const payload: PayloadSpec = { pod: 0, withContainerId: true, withUid: false, rule: 'Terminal shell in container', priority: 'Notice', audit: false, timeOffset: 0, edits, bytes: [] };
  return { mode: 'binary', broker: true, ceTimeOffset: 0, payload, headers, chunked: false };
}

/** The same alert as a structured-mode event, with attribute edits. */
function structured(attrs: AttrEdit[]): RequestSpec {
  return { mode: 'structured', payload: (alert() as { payload: PayloadSpec }).payload, attrs, contentType: 'application/cloudevents+json', chunked: false };
}

const regressions: [string, RequestSpec][] = [
  ['a container.id that is a number is malformed: the pod is not touched', alert([{ path: 'output_fields.container.id', v: { t: 'num', v: 290926 } }])],
  ['a k8s.pod.uid that is a boolean is malformed: the pod is not touched', alert([{ path: 'output_fields.k8s.pod.uid', v: { t: 'bool', v: true } }])],
  [
    'an alert whose time is garbage is not acted on, even with a CloudEvent time an hour old',
    alert([{ path: 'time', v: { t: 'time', offset: 0, form: 'garbage' } }], [{ name: 'Ce-Time', v: { t: 'time', offset: -3_600, form: 'go' } }]),
  ],
  ['an alert timed an hour ahead is invalid, not acted on', alert([{ path: 'time', v: { t: 'time', offset: 3_600, form: 'go' } }])],
  ['a falco.rule.output.v1 event with "priority":5 is not answered 2xx', alert([{ path: 'priority', v: { t: 'num', v: 5 } }])],
  ['a falco.rule.output.v1 event without output_fields is not answered 2xx', alert([{ path: 'output_fields', v: undefined }])],
  ['a binary event sent as text/plain is read by its shape and acted on', alert([], [{ name: 'Content-Type', v: { t: 'str', v: 'text/plain' } }])],
  ['a binary event with curl\'s default Content-Type is read by its shape and acted on', alert([], [{ name: 'Content-Type', v: { t: 'str', v: 'application/x-www-form-urlencoded' } }])],
  ['a CloudEvent time without a UTC offset is invalid', alert([{ path: 'time', v: undefined }], [{ name: 'Ce-Time', v: { t: 'time', offset: 0, form: 'noOffset' } }])],
  ['a ce-id percent-encoding invalid UTF-8 is invalid', alert([], [{ name: 'Ce-Id', v: { t: 'str', v: '%FF' } }])],
  ['a binary event with an empty Content-Type header is read by its shape and acted on', alert([], [{ name: 'Content-Type', v: { t: 'str', v: '' } }])],
  ['in structured mode a null optional attribute is absent, not invalid', structured([{ key: 'time', v: { t: 'null' } }])],
  ['a structured event with both data and data_base64 is invalid', structured([{ key: 'data_base64', v: { t: 'payloadBase64' } }])],
  ['a pod name with a path in it never reaches the API', alert([{ path: 'output_fields.k8s.pod.name', v: { t: 'str', v: '../../nodes/x' } }])],
  ['an alert about kube-system never reaches the API', alert([{ path: 'output_fields.k8s.ns.name', v: { t: 'str', v: 'kube-system' } }])],
  [
    'a batch of 1,000 alerts is answered without a 5xx',
    { mode: 'batch', members: [{ payload: (alert() as { payload: PayloadSpec }).payload, attrs: [] }], copies: 999, contentType: 'application/cloudevents-batch+json' },
  ],
];

for (const [name, spec] of regressions) {
  t.test(name, async (t) => {
    const probe = await target.probe(spec);
    t.same(probe.problems, [], 'every property holds');
    if (probe.problems.length > 0) t.comment(target.explain(probe));
    t.ok(target.alive(), 'still running');
  });
}

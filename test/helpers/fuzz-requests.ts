/**
 * fast-check generators of requests to drop, as plain data (so fast-check can print and shrink
 * them), and their rendering to exact bytes at a given time. Weighted toward almost-valid input:
 * a Falcosidekick binary CloudEvent, byte for byte as test/helpers/falco.ts builds it, with one
 * to three things wrong.
 */
import fc from 'fast-check';
import { parseJson, stringifyJson } from '../../src/json.ts';
import { brokerHeaders, falcoPayload, sidekickHeaders } from './falco.ts';
import { goTime } from './http.ts';
import type { WireRequest } from './fuzz-wire.ts';

/** The pods the fake API holds (and a name it does not), in unprotected and protected namespaces. */
export const pool = [
  { ns: 'default', pod: 'mysql-db-7d59548d75-g9msc', cid: '2d90926af63e', uid: '5b0b8f0e-6a4c-4f0a-9d38-1a2b3c4d5e01' },
  { ns: 'default', pod: 'web-5d8f7b9c4-x2k4p', cid: 'abcdef123456', uid: '5b0b8f0e-6a4c-4f0a-9d38-1a2b3c4d5e02' },
  { ns: 'prod', pod: 'api-6c9d8f7b5-q7w2e', cid: '0123456789ab', uid: '5b0b8f0e-6a4c-4f0a-9d38-1a2b3c4d5e03' },
  { ns: 'default', pod: 'ghost-5d8f7b9c4-zzzzz', cid: 'fedcba987654', uid: '5b0b8f0e-6a4c-4f0a-9d38-1a2b3c4d5e04', absent: true },
  { ns: 'kube-system', pod: 'coredns-6d4b75cb6d-abcde', cid: '1111aaaa2222', uid: '5b0b8f0e-6a4c-4f0a-9d38-1a2b3c4d5e05' },
  { ns: 'monitoring', pod: 'prometheus-0', cid: '3333bbbb4444', uid: '5b0b8f0e-6a4c-4f0a-9d38-1a2b3c4d5e06' },
  { ns: 'falco-drop', pod: 'drop-00001-deployment-7f9c-abcde', cid: '5555cccc6666', uid: '5b0b8f0e-6a4c-4f0a-9d38-1a2b3c4d5e07' },
  { ns: 'falco', pod: 'falco-x7k2p', cid: '7777dddd8888', uid: '5b0b8f0e-6a4c-4f0a-9d38-1a2b3c4d5e08' },
] as const;

/** A JSON value to put somewhere, described so fast-check can print it. */
export type V =
  | { readonly t: 'str'; readonly v: string }
  | { readonly t: 'num'; readonly v: number }
  | { readonly t: 'bool'; readonly v: boolean }
  | { readonly t: 'null' }
  | { readonly t: 'obj' }
  | { readonly t: 'arr' }
  /** JSON text inserted as is: numbers past 2^53, "\ud800" escapes, 1e400. */
  | { readonly t: 'raw'; readonly text: string }
  | { readonly t: 'huge'; readonly ch: string; readonly n: number }
  | { readonly t: 'deep'; readonly depth: number; readonly kind: 'arr' | 'obj' }
  /** A time relative to when the request is sent, in seconds, in one of several spellings. */
  | { readonly t: 'time'; readonly offset: number; readonly form: TimeForm };

export type TimeForm = 'go' | 'noOffset' | 'plus2h' | 'dateOnly' | 'garbage';

export interface FieldEdit {
  /** A top-level key, or `output_fields.<field>`. */
  readonly path: string;
  /** Undefined deletes the key. */
  readonly v: V | undefined;
}

export type ByteEdit =
  | { readonly op: 'truncate'; readonly at: number }
  | { readonly op: 'insert'; readonly at: number; readonly bytes: readonly number[] }
  /** Insert bytes right after the first occurrence of a text (e.g. inside a field's value). */
  | { readonly op: 'after'; readonly marker: string; readonly bytes: readonly number[] };

export interface PayloadSpec {
  readonly pod: number;
  readonly withContainerId: boolean;
  readonly withUid: boolean;
  readonly rule: string;
  readonly priority: string;
  readonly audit: boolean;
  readonly timeOffset: number;
  readonly edits: readonly FieldEdit[];
  readonly bytes: readonly ByteEdit[];
}

export interface HeaderEdit {
  readonly name: string;
  /** Undefined deletes the header. */
  readonly v: { readonly t: 'str'; readonly v: string } | { readonly t: 'time'; readonly offset: number; readonly form: TimeForm } | undefined;
}

export interface AttrEdit {
  readonly key: string;
  readonly v: V | { readonly t: 'payloadText' } | { readonly t: 'payloadBase64' } | undefined;
}

export type RequestSpec =
  | { readonly mode: 'binary'; readonly broker: boolean; readonly ceTimeOffset: number; readonly payload: PayloadSpec; readonly headers: readonly HeaderEdit[]; readonly chunked: boolean }
  | { readonly mode: 'structured'; readonly payload: PayloadSpec; readonly attrs: readonly AttrEdit[]; readonly contentType: string | null; readonly chunked: boolean }
  | { readonly mode: 'batch'; readonly members: readonly { payload: PayloadSpec; attrs: readonly AttrEdit[] }[]; readonly copies: number; readonly contentType: string }
  | { readonly mode: 'plain'; readonly payload: PayloadSpec; readonly contentType: string | null; readonly newline: boolean }
  | { readonly mode: 'garbage'; readonly headers: readonly (readonly [string, string])[]; readonly body: readonly number[] | { readonly ch: string; readonly n: number } };

// ---------------------------------------------------------------------------------------------
// Rendering

function timeText(nowMs: number, offset: number, form: TimeForm): string {
  const date = new Date(nowMs + offset * 1000);
  switch (form) {
    case 'go':
      return goTime(date);
    case 'noOffset':
      return date.toISOString().replace(/Z$/, '');
    case 'plus2h':
      return `${new Date(date.getTime() + 2 * 3600_000).toISOString().replace(/Z$/, '')}+02:00`;
    case 'dateOnly':
      return date.toISOString().slice(0, 10);
    case 'garbage':
      return 'garbage';
  }
}

/** Renders a value, giving raw JSON text through placeholders. */
function valueOf(v: V, nowMs: number, raws: string[]): unknown {
  switch (v.t) {
    case 'str':
    case 'num':
    case 'bool':
      return v.v;
    case 'null':
      return null;
    case 'obj':
      return { a: 1 };
    case 'arr':
      return ['x'];
    case 'raw':
      raws.push(v.text);
      return `@@RAW${raws.length - 1}@@`;
    case 'huge':
      return v.ch.repeat(v.n);
    case 'deep':
      raws.push(v.kind === 'arr' ? `${'['.repeat(v.depth)}${']'.repeat(v.depth)}` : `${'{"a":'.repeat(v.depth)}1${'}'.repeat(v.depth)}`);
      return `@@RAW${raws.length - 1}@@`;
    case 'time':
      return timeText(nowMs, v.offset, v.form);
  }
}

function withRaws(json: string, raws: readonly string[]): string {
  return raws.reduce((text, raw, i) => text.replace(`"@@RAW${i}@@"`, () => raw), json);
}

/** Go's encoding/json escapes these in strings, as Falcosidekick's bodies carry them. */
function goEscape(json: string): string {
  return json.replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026');
}

function applyBytes(body: Buffer, edits: readonly ByteEdit[]): Buffer {
  let out = body;
  for (const edit of edits) {
    if (edit.op === 'truncate') out = out.subarray(0, Math.floor(edit.at * out.length));
    else if (edit.op === 'insert') {
      const at = Math.floor(edit.at * out.length);
      out = Buffer.concat([out.subarray(0, at), Buffer.from(edit.bytes), out.subarray(at)]);
    } else {
      const at = out.indexOf(edit.marker);
      if (at >= 0) out = Buffer.concat([out.subarray(0, at + Buffer.byteLength(edit.marker)), Buffer.from(edit.bytes), out.subarray(at + Buffer.byteLength(edit.marker))]);
    }
  }
  return out;
}

/** The Falco payload as Falcosidekick marshals it, then the edits. `seq` makes its uuid unique. */
export function renderPayload(p: PayloadSpec, nowMs: number, seq: number): Buffer {
  const target = pool[p.pod] as (typeof pool)[number];
  const fields: Record<string, string | number | bigint | null> = p.audit
    ? {
        'ka.target.resource': 'pods',
        'ka.target.namespace': target.ns,
        'ka.target.name': target.pod,
        'ka.target.subresource': 'exec',
        'ka.user.name': 'kubernetes-admin',
        'ka.verb': 'create',
      }
    : { 'k8s.ns.name': target.ns, 'k8s.pod.name': target.pod, 'container.id': target.cid };
  if (p.withUid) fields['k8s.pod.uid'] = target.uid;
  const json = falcoPayload({
    uuid: `8e2f6a7c-1d2b-4c3e-9f40-${String(seq).padStart(12, '0')}`,
    rule: p.rule,
    priority: p.priority,
    time: goTime(new Date(nowMs + p.timeOffset * 1000)),
    source: p.audit ? 'k8s_audit' : 'syscall',
    ...(p.audit ? { onlyFields: fields } : { fields }),
  });
  const model = parseJson(json) as unknown as Record<string, unknown> & { output_fields: Record<string, unknown> };
  if (!p.withContainerId) delete model.output_fields['container.id'];
  const raws: string[] = [];
  for (const edit of p.edits) {
    const inFields = edit.path.startsWith('output_fields.');
    const holder = inFields ? model.output_fields : model;
    // output_fields may itself have been replaced by an earlier edit.
    if (typeof holder !== 'object' || holder === null || Array.isArray(holder)) continue;
    const key = inFields ? edit.path.slice('output_fields.'.length) : edit.path;
    if (edit.v === undefined) delete holder[key];
    // defineProperty, so a key named __proto__ is an own key like any other.
    else Object.defineProperty(holder, key, { value: valueOf(edit.v, nowMs, raws), enumerable: true, configurable: true, writable: true });
  }
  const text = withRaws(goEscape(stringifyJson(model)), raws);
  return applyBytes(Buffer.from(text, 'utf8'), p.bytes);
}

function structuredEvent(payload: PayloadSpec, attrs: readonly AttrEdit[], nowMs: number, seq: number, id: string): Buffer {
  const data = renderPayload(payload, nowMs, seq);
  const raws: string[] = [];
  const event: Record<string, unknown> = {
    specversion: '1.0',
    id,
    source: 'https://falco.org',
    type: 'falco.rule.output.v1',
    time: goTime(new Date(nowMs + payload.timeOffset * 1000)),
    datacontenttype: 'application/json',
    priority: payload.priority,
    rule: payload.rule,
    eventsource: payload.audit ? 'k8s_audit' : 'syscall',
    hostname: 'worker-node-2',
    data: '@@DATA@@',
  };
  for (const edit of attrs) {
    if (edit.v === undefined) delete event[edit.key];
    else if (edit.v.t === 'payloadText') event[edit.key] = data.toString('utf8');
    else if (edit.v.t === 'payloadBase64') event[edit.key] = data.toString('base64');
    else event[edit.key] = valueOf(edit.v, nowMs, raws);
  }
  // The payload goes in as its exact bytes (it may hold bytes that are not UTF-8).
  const [before, after] = withRaws(JSON.stringify(event), raws).split('"@@DATA@@"');
  return after === undefined ? Buffer.from(before as string, 'utf8') : Buffer.concat([Buffer.from(before as string, 'utf8'), data, Buffer.from(after, 'utf8')]);
}

/** The request a spec describes, sent at `nowMs`; `seq` makes CloudEvent ids and uuids unique. */
export function render(spec: RequestSpec, nowMs: number, seq: number): WireRequest {
  switch (spec.mode) {
    case 'binary': {
      const id = `6f1d3c0e-8a47-4b1e-9d55-${String(seq).padStart(12, '0')}`;
      const base = (spec.broker ? brokerHeaders : sidekickHeaders)(id, { rule: spec.payload.rule, priority: spec.payload.priority, eventsource: spec.payload.audit ? 'k8s_audit' : 'syscall' });
      const headers = new Map<string, string>(Object.entries(base));
      headers.set('Ce-Time', goTime(new Date(nowMs + spec.ceTimeOffset * 1000)));
      for (const edit of spec.headers) {
        const existing = [...headers.keys()].find((k) => k.toLowerCase() === edit.name.toLowerCase()) ?? edit.name;
        if (edit.v === undefined) headers.delete(existing);
        else headers.set(existing, edit.v.t === 'str' ? edit.v.v : timeText(nowMs, edit.v.offset, edit.v.form));
      }
      return { headers: [...headers], body: renderPayload(spec.payload, nowMs, seq), chunked: spec.chunked };
    }
    case 'structured': {
      const body = structuredEvent(spec.payload, spec.attrs, nowMs, seq, `structured-${seq}`);
      return { headers: spec.contentType === null ? [] : [['Content-Type', spec.contentType]], body, chunked: spec.chunked };
    }
    case 'batch': {
      const members = spec.members.map((m, i) => structuredEvent(m.payload, m.attrs, nowMs, seq, `batch-${seq}-${i}`));
      const template = spec.members[0]?.payload;
      for (let i = 0; template && i < spec.copies; i++) {
        members.push(structuredEvent({ ...template, pod: i % pool.length }, [], nowMs, seq, `batch-${seq}-copy-${i}`));
      }
      const parts = members.flatMap((m, i) => (i === 0 ? [m] : [Buffer.from(','), m]));
      return { headers: [['Content-Type', spec.contentType]], body: Buffer.concat([Buffer.from('['), ...parts, Buffer.from(']')]), chunked: false };
    }
    case 'plain': {
      const body = renderPayload(spec.payload, nowMs, seq);
      const headers: [string, string][] = [['User-Agent', 'Falcosidekick']];
      if (spec.contentType !== null) headers.unshift(['Content-Type', spec.contentType]);
      return { headers, body: spec.newline ? Buffer.concat([body, Buffer.from('\n')]) : body, chunked: false };
    }
    case 'garbage':
      return { headers: spec.headers, body: Array.isArray(spec.body) ? Buffer.from(spec.body) : Buffer.from((spec.body as { ch: string; n: number }).ch.repeat((spec.body as { n: number }).n)), chunked: false };
  }
}

// ---------------------------------------------------------------------------------------------
// Generators

const w = <T>(weight: number, arbitrary: fc.Arbitrary<T>) => ({ weight, arbitrary });

/** Big numbers (past 2^53), odd number spellings, lone surrogates, as raw JSON text. */
const rawValue = fc.constantFrom(
  '9007199254740993',
  '-9007199254740993',
  '123456789012345678901234567890',
  '1e400',
  '-0',
  '0.1e-999',
  '"\\ud800"',
  '"\\udc00x"',
  '"\\ud83d\\ude00"',
  '"\\u0000"',
);

const wrongType: fc.Arbitrary<V> = fc.oneof(
  fc.integer({ min: -5, max: 100 }).map((v): V => ({ t: 'num', v })),
  fc.constantFrom(0.5, 1e21, 290926630000).map((v): V => ({ t: 'num', v })),
  rawValue.filter((r) => !r.startsWith('"')).map((text): V => ({ t: 'raw', text })),
  fc.boolean().map((v): V => ({ t: 'bool', v })),
  fc.constant<V>({ t: 'null' }),
  fc.constant<V>({ t: 'obj' }),
  fc.constant<V>({ t: 'arr' }),
);

const str = (...values: string[]) => fc.constantFrom(...values).map((v): V => ({ t: 'str', v }));

const hugeString = fc.record({ ch: fc.constantFrom('a', 'é', '\u{1F600}', '"'), n: fc.integer({ min: 100_000, max: 600_000 }) }).map(({ ch, n }): V => ({ t: 'huge', ch, n }));
const deep = fc.record({ depth: fc.integer({ min: 1_000, max: 200_000 }), kind: fc.constantFrom<'arr' | 'obj'>('arr', 'obj') }).map(({ depth, kind }): V => ({ t: 'deep', depth, kind }));

const timeForm = fc.constantFrom<TimeForm>('go', 'go', 'noOffset', 'plus2h', 'dateOnly', 'garbage');
const timeOffset = fc.constantFrom(0, 0, 0, -5, -120, -1_000, -3_600, 45, 120, 3_600, -400 * 86_400);
const timeValue = fc.record({ offset: timeOffset, form: timeForm }).map(({ offset, form }): V => ({ t: 'time', offset, form }));

const podNames = str(
  'a/b',
  '../../nodes/x',
  '..',
  '.',
  'web%2F1',
  'web-5d8f7b9c4-X2K4P',
  'Web',
  '',
  'a'.repeat(254),
  'a'.repeat(253),
  'web-1.',
  '-web',
  'web_1',
  ' web-5d8f7b9c4-x2k4p',
  'web 1',
  'wéb',
  'web\u0000',
  'api-6c9d8f7b5-q7w2e',
  'coredns-6d4b75cb6d-abcde',
  'mysql-db-7d59548d75-g9msc/../web-5d8f7b9c4-x2k4p',
  '<NA>',
);
const namespaceNames = str(
  'kube-system',
  'KUBE-SYSTEM',
  'Kube-System',
  'kube-system/..',
  'kube-public',
  'kube-node-lease',
  'knative-serving',
  'knative-eventing',
  'falco',
  'falco-drop',
  'monitoring',
  'default',
  'prod',
  'default/pods',
  '..',
  '%2F',
  '',
  'x'.repeat(64),
  'kube-system ',
  'kube\u2010system',
  '<NA>',
);
const containerIds = str('2d90926af63e', 'abcdef123456', '0123456789ab', '2D90926AF63E', 'host', '', '<NA>', 'ZZZZZZZZZZZZ', '2d90926af63', '2d90926af63e0000000000000000000000000000000000000000000000000000', 'containerd://2d90926af63e', '../2d90926af63e');
const uids = str('5b0b8f0e-6a4c-4f0a-9d38-1a2b3c4d5e01', '5b0b8f0e-6a4c-4f0a-9d38-1a2b3c4d5e03', '5B0B8F0E-6A4C-4F0A-9D38-1A2B3C4D5E01', 'not-a-uid', '', '<NA>', '../uid');
const lone = fc.constantFrom('"web-5d8f7b9c4-x2k4p\\ud800"', '"\\udc00"', '"kube-system\\udbff"').map((text): V => ({ t: 'raw', text }));

/** One thing wrong with the payload. */
const fieldEdit: fc.Arbitrary<FieldEdit> = fc.oneof(
  // Fields of the wrong JSON type (issue 7 §2).
  w(6, fc.record({ path: fc.constantFrom('output_fields.container.id', 'output_fields.k8s.pod.uid'), v: wrongType })),
  w(4, fc.record({ path: fc.constantFrom('rule', 'priority', 'output_fields', 'time', 'source', 'tags', 'uuid', 'output', 'hostname'), v: wrongType })),
  w(2, fc.record({ path: fc.constantFrom('output_fields.k8s.ns.name', 'output_fields.k8s.pod.name', 'output_fields.ka.target.name', 'output_fields.evt.time'), v: wrongType })),
  // Missing fields.
  w(3, fc.record({ path: fc.constantFrom('rule', 'priority', 'output_fields', 'time', 'source', 'output_fields.k8s.ns.name', 'output_fields.k8s.pod.name'), v: fc.constant(undefined) })),
  // Times: garbage, no offset, far ahead, long ago.
  w(5, fc.record({ path: fc.constant('time'), v: timeValue })),
  // Names: `/`, `..`, `%2F`, upper case, protected namespaces, lone surrogates.
  w(6, fc.record({ path: fc.constantFrom('output_fields.k8s.pod.name', 'output_fields.ka.target.name'), v: fc.oneof(podNames, lone) })),
  w(6, fc.record({ path: fc.constantFrom('output_fields.k8s.ns.name', 'output_fields.ka.target.namespace'), v: fc.oneof(namespaceNames, lone) })),
  w(4, fc.record({ path: fc.constant('output_fields.container.id'), v: containerIds })),
  w(3, fc.record({ path: fc.constant('output_fields.k8s.pod.uid'), v: uids })),
  w(2, fc.record({ path: fc.constant('output_fields.ka.target.resource'), v: str('pods', 'pods/exec', 'secrets', 'Pods') })),
  // Numbers past 2^53 and odd spellings where numbers belong; lone surrogates in text.
  w(2, fc.record({ path: fc.constantFrom('output_fields.evt.time', 'output_fields.proc.tty', 'output_fields.user.loginuid'), v: rawValue.map((text): V => ({ t: 'raw', text })) })),
  w(2, fc.record({ path: fc.constantFrom('output', 'rule', 'hostname', 'output_fields.proc.cmdline'), v: lone })),
  // Huge strings and deep nesting (rare: each is up to ~1 MiB).
  w(1, fc.record({ path: fc.constantFrom('rule', 'output', 'output_fields.proc.cmdline', 'output_fields.k8s.pod.name'), v: hugeString })),
  w(1, fc.record({ path: fc.constantFrom('output_fields', 'output_fields.proc.cmdline', 'tags', 'extra'), v: deep })),
  // Unknown extra keys.
  w(1, fc.record({ path: fc.constantFrom('extra', 'output_fields.extra', '__proto__', 'output_fields.__proto__'), v: fc.oneof(wrongType, str('x')) })),
);

const invalidUtf8 = fc.constantFrom([0xff], [0xc3, 0x28], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xc0, 0xaf], [0xe2, 0x82], [0x80]);
const byteEdit: fc.Arbitrary<ByteEdit> = fc.oneof(
  w(3, fc.record({ op: fc.constant<'truncate'>('truncate'), at: fc.double({ min: 0, max: 0.999, noNaN: true }) })),
  w(2, fc.record({ op: fc.constant<'insert'>('insert'), at: fc.double({ min: 0, max: 1, noNaN: true }), bytes: invalidUtf8 })),
  w(3, fc.record({ op: fc.constant<'after'>('after'), marker: fc.constantFrom('"k8s.pod.name":"', '"k8s.ns.name":"', '"rule":"', '"output":"', '"container.id":"', '"time":"'), bytes: invalidUtf8 })),
);

const rules = fc.oneof(
  w(6, fc.constant('Terminal shell in container')),
  w(2, fc.constant('Write below etc')),
  w(1, fc.constant('Attach/Exec Pod')),
  w(2, fc.constantFrom('Read sensitive file untrusted', 'terminal shell in container', 'Terminal shell in container ')),
);
const prios = fc.oneof(w(4, fc.constantFrom('Notice', 'Warning', 'Critical')), w(1, fc.constantFrom('Debug', 'notice', 'WARNING', 'Loud', '')));

const payloadBase = fc.record({
  // Mostly the pods drop may act on; every pod of the pool stays reachable.
  pod: fc.oneof(w(3, fc.constantFrom(0, 1, 2)), w(2, fc.nat({ max: pool.length - 1 }))),
  withContainerId: fc.boolean(),
  withUid: fc.boolean(),
  rule: rules,
  priority: prios,
  timeOffset: fc.constantFrom(0, 0, 0, 0, -30, -1_000, -3_600),
});

/** A payload with up to `maxEdits` things wrong (none: a valid alert) and, one time in seven, bytes changed. */
const payloadSpec = (maxEdits: number): fc.Arbitrary<PayloadSpec> =>
  fc
    .tuple(
      payloadBase,
      fc.boolean(),
      fc.oneof(w(2, fc.constant([] as FieldEdit[])), w(3, fc.array(fieldEdit, { minLength: 1, maxLength: maxEdits }))),
      fc.oneof(w(6, fc.constant([] as ByteEdit[])), w(1, fc.array(byteEdit, { minLength: 1, maxLength: 2 }))),
    )
    .map(([base, audit, edits, bytes]) => ({ ...base, audit: audit && base.rule === 'Attach/Exec Pod', edits, bytes }));

const ceHeaderEdit: fc.Arbitrary<HeaderEdit> = fc.oneof(
  // Content types (issue 7 §2: read by shape whatever they say, or none).
  w(
    6,
    fc.record({
      name: fc.constant('Content-Type'),
      v: fc.option(
        fc.constantFrom('text/plain', 'application/octet-stream', 'application/x-www-form-urlencoded', 'application/json; charset=utf-8', 'APPLICATION/JSON', 'text/json', 'application/xml', '', 'garbage', 'application/cloudevents+json', 'multipart/form-data; boundary=x').map((v) => ({ t: 'str' as const, v })),
        { nil: undefined },
      ),
    }),
  ),
  // CloudEvent times: no offset, garbage, an hour old.
  w(4, fc.record({ name: fc.constant('Ce-Time'), v: fc.option(fc.record({ t: fc.constant<'time'>('time'), offset: timeOffset, form: timeForm }), { nil: undefined }) })),
  // Required attributes: missing, empty, odd.
  w(
    4,
    fc.record({
      name: fc.constantFrom('Ce-Id', 'Ce-Source', 'Ce-Type', 'Ce-Specversion'),
      v: fc.option(fc.constantFrom('', '1.0', '0.3', '%FF', '%C3%28', '%ED%A0%80', '%41%42', '100%', '%zz', 'x', 'dev.knative.kafka.event', 'https%3A%2F%2Ffalco.org', '::not a uri', '\xff\xfe', 'a\x01b').map((v) => ({ t: 'str' as const, v })), { nil: undefined }),
    }),
  ),
  // Extension headers: percent-encoding, raw bytes, control characters, huge values.
  w(
    3,
    fc.record({
      name: fc.constantFrom('Ce-Rule', 'Ce-Priority', 'Ce-Hostname', 'Ce-Foo', 'Ce-Bad_Name', 'Ce-Ümlaut', 'X-Other'),
      v: fc.oneof(
        fc.constantFrom('CPU > 90%', '%FF%FE', 'Terminal%20shell', '\xe9t\xe9', 'tab\there', 'nul\x00', 'del\x7f', 'x'.repeat(20_000), '').map((v) => ({ t: 'str' as const, v })),
        fc.string({ maxLength: 30 }).map((v) => ({ t: 'str' as const, v: v.replace(/[\r\n]/g, ' ') })),
      ),
    }),
  ),
);

const binary = fc.record({
  mode: fc.constant<'binary'>('binary'),
  broker: fc.boolean(),
  ceTimeOffset: fc.constantFrom(0, 0, 0, -30, -3_600),
  payload: payloadSpec(3),
  headers: fc.oneof(w(3, fc.constant([] as HeaderEdit[])), w(2, fc.array(ceHeaderEdit, { minLength: 1, maxLength: 3 }))),
  chunked: fc.oneof(w(9, fc.constant(false)), w(1, fc.constant(true))),
});

const attrEdit: fc.Arbitrary<AttrEdit> = fc.oneof(
  w(3, fc.record({ key: fc.constantFrom('subject', 'dataschema', 'time', 'datacontenttype', 'rule', 'priority'), v: fc.constant<V>({ t: 'null' }) })),
  w(2, fc.record({ key: fc.constantFrom('id', 'source', 'type', 'specversion'), v: fc.option(fc.oneof(str('', '0.3', '1.0', 'x', 'dev.knative.kafka.event', '%FF'), wrongType), { nil: undefined }) })),
  w(2, fc.record({ key: fc.constant('time'), v: fc.oneof(timeValue, wrongType) })),
  w(3, fc.record({ key: fc.constantFrom('data', 'data_base64'), v: fc.constantFrom<AttrEdit['v']>({ t: 'payloadText' }, { t: 'payloadBase64' }, { t: 'null' }, undefined, { t: 'str', v: 'not json' }, { t: 'num', v: 5 }) })),
  w(1, fc.record({ key: fc.constantFrom('datacontenttype'), v: str('text/plain', 'application/json', 'application/xml') })),
  w(1, fc.record({ key: fc.constantFrom('rule', 'foo', 'Bad-Name'), v: fc.oneof(wrongType, str('x')) })),
);

const structured = fc.record({
  mode: fc.constant<'structured'>('structured'),
  payload: payloadSpec(2),
  attrs: fc.oneof(w(2, fc.constant([] as AttrEdit[])), w(3, fc.array(attrEdit, { minLength: 1, maxLength: 3 }))),
  contentType: fc.constantFrom('application/cloudevents+json', 'application/cloudevents+json; charset=utf-8', 'Application/CloudEvents+JSON', null, 'application/json'),
  chunked: fc.boolean(),
});

const batch = fc.record({
  mode: fc.constant<'batch'>('batch'),
  members: fc.array(fc.record({ payload: payloadSpec(1), attrs: fc.oneof(w(3, fc.constant([] as AttrEdit[])), w(1, fc.array(attrEdit, { maxLength: 1 }))) }), { maxLength: 4 }),
  copies: fc.oneof(w(8, fc.constant(0)), w(1, fc.integer({ min: 1, max: 1_000 }))),
  contentType: fc.constantFrom('application/cloudevents-batch+json', 'application/cloudevents-batch+json; charset=utf-8'),
});

const plain = fc.record({
  mode: fc.constant<'plain'>('plain'),
  payload: payloadSpec(3),
  contentType: fc.constantFrom('application/json; charset=utf-8', 'application/json', null, 'text/plain', 'application/x-www-form-urlencoded'),
  newline: fc.boolean(),
});

const garbage = fc.record({
  mode: fc.constant<'garbage'>('garbage'),
  headers: fc.array(
    fc.tuple(fc.constantFrom('Content-Type', 'Ce-Specversion', 'Ce-Id', 'Ce-Source', 'Ce-Type', 'X-Junk'), fc.constantFrom('application/json', 'application/cloudevents+json', 'application/cloudevents-batch+json', '1.0', 'x', '', 'text/plain')),
    { maxLength: 5 },
  ),
  body: fc.oneof(
    w(8, fc.uint8Array({ maxLength: 200 }).map((a) => [...a])),
    w(4, fc.constantFrom('', '{}', '[]', 'null', '"x"', '[{}]', '{"specversion":"1.0"}', '{"rule":"x","priority":"y","output_fields":{}}', '[null]', '{"data":{}}').map((s) => [...Buffer.from(s)])),
    w(1, fc.record({ ch: fc.constantFrom('[', '{', 'a', ' '), n: fc.integer({ min: 100_000, max: 1_100_000 }) })),
  ),
});

/** Every request shape, weighted toward almost-valid Falcosidekick deliveries. */
export const requestSpec: fc.Arbitrary<RequestSpec> = fc.oneof(
  w(10, binary),
  w(3, structured),
  w(2, batch),
  w(2, plain),
  w(2, garbage),
);

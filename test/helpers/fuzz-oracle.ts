/**
 * The fuzz test's reference check: an independent reading of one HTTP request, written from the
 * README, contract.md and issue 7 (not from src/), that says which pods the request may make
 * drop ask the Kubernetes API about, which alerts in it must reach the API, and whether it is a
 * Falco CloudEvent whose payload is invalid (which must not be answered 2xx).
 *
 * It errs on the side of allowing: where the documents leave a reading open (a structured event
 * with a JSON string as `data`, bytes that are not UTF-8 in a text field, a body sent with both
 * a CloudEvents header and a structured media type), the API may be asked, but nothing must be.
 */
import { createHash } from 'node:crypto';
import type { WireRequest } from './fuzz-wire.ts';

export interface PolicyRule {
  /** Falco rule names (exact, case-sensitive). */
  readonly rules: readonly string[];
  /** Lowest priority that matches (>=), when the rule has one. */
  readonly minPriority?: string;
  readonly source?: string;
}

export interface OracleSetup {
  readonly policy: readonly PolicyRule[];
  /** The built-in floor, drop's own namespace and the policy's protectedNamespaces. */
  readonly protectedNamespaces: ReadonlySet<string>;
  readonly maxAlertAgeSeconds: number;
  /** How far ahead of drop's clock an alert's time may be (issue 7: 60 s). */
  readonly maxFutureSeconds: number;
  readonly bodyLimit: number;
}

export interface Judgement {
  /** "namespace/pod" the API may be asked about: valid alerts about valid pods in unprotected namespaces. */
  readonly allowed: Set<string>;
  /** Alerts beyond doubt valid, fresh, matching, about a valid pod in an unprotected namespace: their pod must be read. */
  readonly mustRead: { readonly target: string; readonly key: string; readonly inBatch: boolean }[];
  /** Set when this is one falco.rule.output.v1 CloudEvent (not a batch) that is invalid or whose payload is, or plain JSON that is not a valid alert: must not be 2xx. */
  readonly invalidFalcoEvent: string | undefined;
  /** Delivery keys (CloudEvent source + id, or a plain body's hash) of every alert in it: a resend is answered from memory. */
  readonly keys: string[];
  /** Why each event in the request was judged so (for failure messages). */
  readonly notes: string[];
}

const dns1123Label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const dns1123Subdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const containerId = /^[0-9a-f]{12,64}$/i;
/** RFC 3339 date-time: a date, `T`, a time, and a UTC offset (Z or ±hh:mm). */
const rfc3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;
const priorities = ['debug', 'informational', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency'];
const loneSurrogate = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const headerName = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const headerCtl = /[\x00-\x08\x0a-\x1f\x7f]/;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function timeMs(value: unknown): number | undefined {
  if (typeof value !== 'string' || !rfc3339.test(value)) return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : ms;
}

/** Any string anywhere in the value holds a lone surrogate (valid JSON, not valid Unicode text). Iterative: values nest deep. */
function hasLoneSurrogate(root: unknown): boolean {
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const value = stack.pop();
    if (typeof value === 'string') {
      if (loneSurrogate.test(value)) return true;
    } else if (Array.isArray(value)) stack.push(...value);
    else if (isObj(value)) {
      for (const [k, v] of Object.entries(value)) {
        if (loneSurrogate.test(k)) return true;
        stack.push(v);
      }
    }
  }
  return false;
}

/** How deep arrays and objects nest (iterative: values nest deep). */
function depth(root: unknown): number {
  let deepest = 0;
  const stack: [unknown, number][] = [[root, 0]];
  while (stack.length > 0) {
    const [value, level] = stack.pop() as [unknown, number];
    if (typeof value !== 'object' || value === null) continue;
    deepest = Math.max(deepest, level + 1);
    for (const child of Object.values(value)) stack.push([child, level + 1]);
  }
  return deepest;
}

function parseJson(text: string): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return { ok: false };
  }
}

/**
 * A header value as the CloudEvents HTTP binding reads it: each run of %XX is UTF-8 (invalid
 * UTF-8 makes the value invalid); a % that does not start %XX stays as sent.
 */
function percentDecode(value: string): string | undefined {
  let bad = false;
  const decoded = value.replace(/(?:%[0-9a-fA-F]{2})+/g, (run) => {
    const bytes = Buffer.from(run.replace(/%/g, ''), 'hex');
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      bad = true;
      return run;
    }
  });
  return bad ? undefined : decoded;
}

interface Context {
  readonly id: string;
  readonly source: string;
  readonly type: string;
  readonly timeMs: number | undefined;
  /** `source` is plainly a URI reference (RFC 3986 characters, %XX only as an encoding). */
  readonly uriSource: boolean;
}

/** A conservative RFC 3986 URI-reference check: only its characters, % only before two hex digits, no ':' in a relative first segment. */
function isUriReference(value: string): boolean {
  if (!/^(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?#[\]]|%[0-9A-Fa-f]{2})*$/.test(value)) return false;
  if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(value)) return true;
  return !/^[^/?#]*:/.test(value);
}

/** The required and known attributes of a CloudEvent; a reason when invalid. */
function checkContext(attributes: Obj, structured: boolean): Context | string {
  for (const name of ['specversion', 'id', 'source', 'type']) {
    if (typeof attributes[name] !== 'string' || attributes[name] === '') return `${name} missing, empty or not a string`;
  }
  if (attributes.specversion !== '1.0') return `specversion ${JSON.stringify(attributes.specversion)} is not 1.0`;
  // CloudEvents: attribute names are lower-case ASCII letters and digits.
  const badName = Object.keys(attributes).find((name) => !/^[a-z0-9]+$/.test(name) && !(structured && name === 'data_base64'));
  if (badName !== undefined) return `attribute name ${JSON.stringify(badName)} is not lower-case letters and digits`;
  const time = attributes.time;
  let ms: number | undefined;
  if (time !== undefined && !(structured && time === null)) {
    ms = timeMs(time);
    if (ms === undefined) return `time ${JSON.stringify(time)} is not an RFC 3339 date-time with an offset`;
  }
  if (structured) {
    if (attributes.data !== undefined && attributes.data !== null && attributes.data_base64 !== undefined && attributes.data_base64 !== null) {
      return 'data and data_base64 together';
    }
    for (const [name, value] of Object.entries(attributes)) {
      if (name === 'data') continue;
      if (typeof value === 'object' && value !== null) return `attribute ${name} is an object or array`;
    }
  }
  const source = attributes.source as string;
  return { id: attributes.id as string, source, type: attributes.type as string, timeMs: ms, uriSource: isUriReference(source) };
}

type PayloadVerdict =
  | { readonly kind: 'invalid'; readonly reason: string }
  | { readonly kind: 'alert'; readonly target: string | undefined; readonly strict: boolean; readonly reason: string };

/**
 * A Falco payload (contract.md §1.2): rule and priority strings, output_fields an object of
 * strings, numbers, booleans or null; uuid/output/source/hostname strings or null; tags strings;
 * time an RFC 3339 date-time not more than maxFutureSeconds ahead. Then the target: a valid pod
 * and namespace name, not protected, a container.id/k8s.pod.uid that is absent or well formed,
 * a matching policy rule, and an alert no older than maxAlertAgeSeconds.
 */
function checkPayload(value: unknown, eventTime: number | undefined, now: number, setup: OracleSetup): PayloadVerdict {
  if (!isObj(value)) return { kind: 'invalid', reason: 'the payload is not a JSON object' };
  const { rule, priority, output_fields: fields } = value;
  if (typeof rule !== 'string') return { kind: 'invalid', reason: 'rule is not a string' };
  if (typeof priority !== 'string') return { kind: 'invalid', reason: 'priority is not a string' };
  if (!isObj(fields)) return { kind: 'invalid', reason: 'output_fields is not an object' };
  let strict = true;
  for (const [key, v] of Object.entries(fields)) {
    if (typeof v === 'object' && v !== null) return { kind: 'invalid', reason: `output_fields.${key} is an object or array` };
    if (typeof v === 'boolean') strict = false;
  }
  if (value.tags !== undefined && value.tags !== null && !(Array.isArray(value.tags) && value.tags.every((t) => typeof t === 'string'))) {
    return { kind: 'invalid', reason: 'tags is not an array of strings' };
  }
  for (const key of ['uuid', 'output', 'source', 'hostname', 'time']) {
    if (value[key] !== undefined && value[key] !== null && typeof value[key] !== 'string') return { kind: 'invalid', reason: `${key} is not a string` };
  }
  let alertTime = eventTime;
  if (typeof value.time === 'string') {
    alertTime = timeMs(value.time);
    if (alertTime === undefined) return { kind: 'invalid', reason: `time ${JSON.stringify(value.time.slice(0, 80))} is not an RFC 3339 date-time with an offset` };
    if (alertTime > now + (setup.maxFutureSeconds + 5) * 1000) return { kind: 'invalid', reason: `time ${value.time} is more than ${setup.maxFutureSeconds} s ahead` };
  }
  // Lone surrogates, and nesting deeper than any Falco payload (parsers limit depth), are valid JSON but not beyond doubt.
  if (hasLoneSurrogate(value) || depth(value) > 1000) strict = false;
  const skip = (reason: string): PayloadVerdict => ({ kind: 'alert', target: undefined, strict, reason });

  const source = typeof value.source === 'string' ? value.source : 'syscall';
  const text = (key: string): unknown => fields[key];
  let namespace: unknown;
  let name: unknown;
  if (source === 'k8s_audit') {
    if (text('ka.target.resource') !== 'pods') return skip('k8s_audit alert not about a pod');
    namespace = text('ka.target.namespace');
    name = text('ka.target.name');
  } else {
    namespace = text('k8s.ns.name');
    name = text('k8s.pod.name');
  }
  if (typeof namespace !== 'string' || typeof name !== 'string') return skip('no pod named');
  if (!(namespace.length <= 63 && dns1123Label.test(namespace))) return skip(`namespace ${JSON.stringify(namespace).slice(0, 80)} is not an RFC 1123 label`);
  if (!(name.length <= 253 && dns1123Subdomain.test(name))) return skip(`pod name ${JSON.stringify(name).slice(0, 80)} is not an RFC 1123 subdomain`);
  if (setup.protectedNamespaces.has(namespace)) return skip(`namespace ${namespace} is protected`);
  // Identity fields: absent or null is fine; Falco's "<NA>" or "" read as absent (not beyond doubt);
  // a wrong JSON type or a malformed string is a reason not to act (README "How it decides" 2).
  const cid = fields['container.id'];
  if (cid !== undefined && cid !== null) {
    if (typeof cid !== 'string') return skip(`container.id is a ${typeof cid}`);
    if (cid === '' || cid === '<NA>') strict = false;
    else if (cid === 'host') return skip('a host process');
    else if (!containerId.test(cid)) return skip(`container.id ${JSON.stringify(cid).slice(0, 80)} is malformed`);
    // Falco writes lower-case hex; upper case may be read either way.
    else if (cid !== cid.toLowerCase()) strict = false;
  }
  const uid = fields['k8s.pod.uid'];
  if (uid !== undefined && uid !== null) {
    if (typeof uid !== 'string') return skip(`k8s.pod.uid is a ${typeof uid}`);
    if (uid === '' || uid === '<NA>') strict = false;
    else if (!uuid.test(uid)) return skip(`k8s.pod.uid ${JSON.stringify(uid).slice(0, 80)} is malformed`);
    else if (uid !== uid.toLowerCase()) strict = false;
  }
  const rank = priorities.indexOf(priority.toLowerCase());
  const matched = setup.policy.some(
    (r) => r.rules.includes(rule) && (r.minPriority === undefined || rank >= priorities.indexOf(r.minPriority.toLowerCase())) && (r.source === undefined || r.source === source),
  );
  if (!matched) return skip('no policy rule matches');
  if (alertTime !== undefined && now - alertTime > (setup.maxAlertAgeSeconds + 10) * 1000) return skip('too old');
  // Beyond doubt only when the alert's age is known and well inside the window.
  if (alertTime === undefined || now - alertTime > (setup.maxAlertAgeSeconds - 60) * 1000 || alertTime > now + 30_000) strict = false;
  return { kind: 'alert', target: `${namespace}/${name}`, strict, reason: `about ${namespace}/${name}` };
}

/** Structured data: the payload as a value, with whether that reading is beyond doubt. */
function structuredData(event: Obj): { value: unknown; present: boolean; strict: boolean } {
  const type = typeof event.datacontenttype === 'string' ? event.datacontenttype.split(';')[0]!.trim().toLowerCase() : undefined;
  const jsonType = type === undefined || type === 'application/json' || type === 'text/json' || type.endsWith('+json');
  if (typeof event.data_base64 === 'string') {
    const parsed = parseJson(Buffer.from(event.data_base64, 'base64').toString('utf8'));
    return { value: parsed.ok ? parsed.value : undefined, present: true, strict: false };
  }
  if (event.data === undefined || event.data === null) return { value: undefined, present: false, strict: false };
  if (typeof event.data === 'string') {
    const parsed = jsonType ? parseJson(event.data) : { ok: false as const };
    return { value: parsed.ok ? parsed.value : event.data, present: true, strict: false };
  }
  return { value: event.data, present: true, strict: jsonType };
}

export function judge(request: WireRequest, now: number, setup: OracleSetup): Judgement {
  const judgement: Judgement = { allowed: new Set(), mustRead: [], invalidFalcoEvent: undefined, keys: [], notes: [] };
  const result = judgement as { invalidFalcoEvent: string | undefined };
  const headers = new Map<string, string>();
  for (const [name, value] of request.headers) {
    if (!headerName.test(name) || headerCtl.test(value)) {
      judgement.notes.push(`header ${JSON.stringify(name)} is not valid HTTP: Node refuses the request`);
      return judgement;
    }
    headers.set(name.toLowerCase(), value.trim());
  }
  // Node refuses a header block over 16 KiB (431) before the service sees it.
  if (request.headers.reduce((n, [name, value]) => n + name.length + value.length + 4, 0) > 16 * 1024) {
    judgement.notes.push('headers over 16 KiB: Node refuses the request');
    return judgement;
  }
  if (request.body.length > setup.bodyLimit) {
    judgement.notes.push('body over the limit');
    return judgement;
  }
  const validUtf8 = (() => {
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(request.body);
      return true;
    } catch {
      return false;
    }
  })();
  const text = request.body.toString('utf8');
  const contentType = headers.get('content-type');
  const media = contentType?.split(';')[0]?.trim().toLowerCase();

  const consider = (payload: PayloadVerdict, key: string, strict: boolean, where: string, inBatch = false): void => {
    judgement.notes.push(`${where}: ${payload.kind === 'invalid' ? `invalid payload (${payload.reason})` : payload.reason}`);
    judgement.keys.push(key);
    if (payload.kind !== 'alert' || payload.target === undefined) return;
    judgement.allowed.add(payload.target);
    if (strict && payload.strict && validUtf8) judgement.mustRead.push({ target: payload.target, key, inBatch });
  };

  const structured = (event: unknown, where: string, strict: boolean, single: boolean): void => {
    if (!isObj(event)) {
      judgement.notes.push(`${where}: not a JSON object`);
      return;
    }
    const context = checkContext(event, true);
    const falco = event.type === 'falco.rule.output.v1';
    if (typeof context === 'string') {
      judgement.notes.push(`${where}: invalid CloudEvent (${context})`);
      if (falco && single) result.invalidFalcoEvent = `invalid CloudEvent: ${context}`;
      return;
    }
    const data = structuredData(event);
    if (!data.present) {
      judgement.notes.push(`${where}: no data`);
      if (falco && single) result.invalidFalcoEvent = 'a falco.rule.output.v1 event without data';
      return;
    }
    const payload = checkPayload(data.value, context.timeMs, now, setup);
    if (payload.kind === 'invalid' && falco && single) result.invalidFalcoEvent = payload.reason;
    consider(payload, `ce\u0000${context.source}\u0000${context.id}`, strict && data.strict && context.uriSource, where, !single);
  };

  if (headers.has('ce-specversion')) {
    const attributes: Obj = {};
    let bad: string | undefined;
    for (const [name, value] of headers) {
      if (!name.startsWith('ce-')) continue;
      const decoded = percentDecode(value);
      if (decoded === undefined) bad ??= `header ${name}: percent-encoding of invalid UTF-8`;
      attributes[name.slice(3)] = decoded;
    }
    const falco = attributes.type === 'falco.rule.output.v1';
    const context = bad ?? checkContext(attributes, false);
    if (typeof context === 'string') {
      judgement.notes.push(`binary: invalid CloudEvent (${context})`);
      if (falco) result.invalidFalcoEvent = `invalid CloudEvent: ${context}`;
      return judgement;
    }
    // The body is read by its shape whatever the Content-Type says (README; issue 7 §2).
    const parsed = text.length === 0 ? undefined : parseJson(text);
    if (!parsed?.ok) {
      judgement.notes.push(`binary: ${parsed ? 'data is not JSON' : 'no data'}`);
      if (falco) result.invalidFalcoEvent = parsed ? 'the data is not JSON' : 'a falco.rule.output.v1 event without data';
      return judgement;
    }
    const payload = checkPayload(parsed.value, context.timeMs, now, setup);
    if (payload.kind === 'invalid' && falco) result.invalidFalcoEvent = payload.reason;
    // A CloudEvents header with a structured media type is ambiguous: allowed, never required.
    const structuredMedia = media === 'application/cloudevents+json' || media === 'application/cloudevents-batch+json';
    consider(payload, `ce\u0000${context.source}\u0000${context.id}`, !structuredMedia && context.uriSource, 'binary');
    return judgement;
  }
  if (media === 'application/cloudevents+json') {
    const parsed = parseJson(text);
    if (!parsed.ok) judgement.notes.push('structured: not JSON');
    else structured(parsed.value, 'structured', true, true);
    return judgement;
  }
  if (media === 'application/cloudevents-batch+json') {
    const parsed = parseJson(text);
    if (!parsed.ok || !Array.isArray(parsed.value)) judgement.notes.push('batch: not a JSON array');
    else parsed.value.forEach((member, index) => structured(member, `batch[${index}]`, true, false));
    return judgement;
  }
  const parsed = parseJson(text);
  if (!parsed.ok) {
    judgement.notes.push('plain: not JSON');
    return judgement;
  }
  if (isObj(parsed.value) && typeof parsed.value.specversion === 'string') {
    structured(parsed.value, 'structured without its media type', false, true);
    return judgement;
  }
  const key = `sha256\u0000${createHash('sha256').update(text).digest('hex')}`;
  const payload = checkPayload(parsed.value, undefined, now, setup);
  // Plain Falco JSON that is not a valid alert is a 400 (README "What it answers").
  if (payload.kind === 'invalid') result.invalidFalcoEvent = `plain payload: ${payload.reason}`;
  consider(payload, key, true, 'plain');
  return judgement;
}

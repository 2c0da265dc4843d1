import { createHash } from 'node:crypto';
import { CloudEvent, ValidationError } from 'cloudevents';
import { DropError } from './errors.ts';
import { parseJson, type Json } from './json.ts';
import { parseTimestamp, timestampFormat } from './timestamp.ts';

/** The CloudEvent context of an incoming event (data kept apart, parsed losslessly). */
export interface EventContext {
  readonly specversion: string;
  readonly id: string;
  readonly source: string;
  readonly type: string;
  readonly time: string | undefined;
  readonly subject: string | undefined;
  readonly datacontenttype: string | undefined;
  /** Extension attributes (rule, priority, knativearrivaltime, …) as sent. */
  readonly extensions: Readonly<Record<string, string | number | boolean>>;
}

/** How the event arrived (contract.md §1). */
export type DeliveryMode = 'binary' | 'structured' | 'batch' | 'plain';

export interface IncomingEvent {
  readonly mode: DeliveryMode;
  /** The CloudEvent context; undefined for a plain Falco payload sent without CloudEvents. */
  readonly context: EventContext | undefined;
  /** The event data: parsed JSON, a string for non-JSON text, or undefined when absent. */
  readonly data: Json | undefined;
  /** Identity for redelivery: CloudEvent source + id, else (plain payloads) a hash of the body. */
  readonly key: string;
}

export type Headers = Readonly<Record<string, string | string[] | undefined>>;

const coreAttributes = ['specversion', 'id', 'source', 'type'] as const;
const knownAttributes = new Set(['specversion', 'id', 'source', 'type', 'time', 'subject', 'datacontenttype', 'dataschema', 'data', 'data_base64']);

/** A header's value, repeated ones joined with commas (as HTTP folds them). */
export function header(headers: Headers, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(',') : value;
}

/** Media type without parameters, lower-cased: "application/json; charset=utf-8" → "application/json". */
export function mediaType(contentType: string | undefined): string | undefined {
  const type = contentType?.split(';')[0]?.trim().toLowerCase();
  return type === '' ? undefined : type;
}

function isJsonMediaType(type: string | undefined): boolean {
  return type === undefined || type === 'application/json' || type === 'text/json' || type.endsWith('+json');
}

function invalid(message: string, details?: Record<string, unknown>): DropError {
  return new DropError('DROP_INVALID_CLOUDEVENT', message, details ? { details } : {});
}

function parseJsonText(text: string, what: string): Json {
  try {
    return parseJson(text);
  } catch (error) {
    throw new DropError('DROP_INVALID_JSON', `${what} is not valid JSON: ${(error as Error).message}`);
  }
}

// A run of %XX escapes; a `%` not followed by two hex digits is no escape at all.
const escapes = /(?:%[0-9A-Fa-f]{2})+/g;
// fatal: invalid UTF-8 throws instead of becoming U+FFFD; ignoreBOM: a leading U+FEFF is kept.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * The CloudEvents HTTP binding percent-encodes header values and the SDK does not decode them.
 * Each %XX escape is decoded (upper or lower case); escaped bytes that are not valid UTF-8
 * (`%FF`, `%C3%28`, the overlong `%C0%A0`) make the event invalid, as the binding requires.
 * Falcosidekick does not encode at all, so a rule named "CPU > 90%" arrives with a bare `%`:
 * a `%` that does not start an escape is kept as sent (rejecting it, a final 400, would lose
 * the alert, and the rule and priority are read from the body anyway).
 */
function decodeHeaderValue(name: string, value: string): string {
  return value.replace(escapes, (run) => {
    try {
      return utf8.decode(Buffer.from(run.replaceAll('%', ''), 'hex'));
    } catch {
      throw invalid(`binary-mode event: header ${name} percent-decodes "${run}" to bytes that are not UTF-8`);
    }
  });
}

/**
 * Checks what the SDK's constructor would otherwise invent or let pass (a missing id, time or
 * specversion; an unknown specversion), then lets the SDK validate against the v1 schema
 * (source and dataschema as URI references, time as RFC 3339, attribute names).
 */
function validateContext(attributes: Record<string, unknown>, where: string): EventContext {
  for (const name of coreAttributes) {
    const value = attributes[name];
    if (typeof value !== 'string' || value === '') throw invalid(`${where}: required attribute "${name}" is missing or empty`);
  }
  if (attributes.specversion !== '1.0') {
    throw invalid(`${where}: specversion "${String(attributes.specversion)}" is not supported (only 1.0)`);
  }
  if (attributes.time !== undefined && (typeof attributes.time !== 'string' || parseTimestamp(attributes.time) === undefined)) {
    throw invalid(`${where}: time "${String(attributes.time)}" is not ${timestampFormat}`);
  }
  const { data: _data, data_base64: _base64, ...withoutData } = attributes;
  try {
    new CloudEvent(withoutData, true);
  } catch (error) {
    const errors = error instanceof ValidationError ? error.errors : undefined;
    throw invalid(`${where}: ${(error as Error).message}`, errors ? { errors } : undefined);
  }
  const extensions: Record<string, string | number | boolean> = {};
  for (const [name, value] of Object.entries(attributes)) {
    if (knownAttributes.has(name)) continue;
    if (typeof value === 'object') throw invalid(`${where}: extension "${name}" must be a string, number or boolean`);
    extensions[name] = value as string | number | boolean;
  }
  const optional = (name: string): string | undefined => attributes[name] as string | undefined;
  return {
    specversion: '1.0',
    id: attributes.id as string,
    source: attributes.source as string,
    type: attributes.type as string,
    time: optional('time'),
    subject: optional('subject'),
    datacontenttype: optional('datacontenttype'),
    extensions,
  };
}

function contextKey(context: EventContext): string {
  return `ce\u0000${context.source}\u0000${context.id}`;
}

/**
 * Decodes event data. Declared as JSON, it must parse (a 400 otherwise). With no type
 * (KafkaSource) or any other (`text/plain`, `application/octet-stream`, curl's default
 * `application/x-www-form-urlencoded`), it is read by its shape: JSON when it parses, else the
 * text as sent. A Falco alert sent with the wrong label is still a Falco alert; taking it as
 * text would answer 202 "not an alert" and lose it.
 */
function decodeData(body: string, type: string | undefined, declared: boolean): Json | undefined {
  if (body.length === 0) return undefined;
  if (declared && isJsonMediaType(type)) return parseJsonText(body, 'the event data');
  try {
    return parseJson(body);
  } catch {
    return body;
  }
}

function parseBinary(headers: Headers, body: string): IncomingEvent {
  const attributes: Record<string, unknown> = {};
  for (const [name, raw] of Object.entries(headers)) {
    if (!name.startsWith('ce-') || raw === undefined) continue;
    const attribute = name.slice(3);
    attributes[attribute] = decodeHeaderValue(name, Array.isArray(raw) ? raw.join(',') : raw);
  }
  // An empty Content-Type header says as little as none at all.
  const contentType = header(headers, 'content-type')?.trim() || undefined;
  if (contentType !== undefined) attributes.datacontenttype = contentType;
  const context = validateContext(attributes, 'binary-mode event');
  const data = decodeData(body, mediaType(contentType), contentType !== undefined);
  return { mode: 'binary', context, data, key: contextKey(context) };
}

function isRecord(value: Json): value is { [key: string]: Json } {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** CloudEvents attribute names: lower-case ASCII letters and digits (core spec §3.1.1). */
const attributeName = /^[a-z0-9]+$/;

/**
 * The JSON format (§2.2) says a `null` attribute is unset: optional attributes and extensions
 * that are null are dropped (and `data_base64` with them). The required ones stay, so a null id
 * is reported missing; `data` stays, as `null` is a payload of its own.
 */
function withoutNullAttributes(value: { [key: string]: Json }): { [key: string]: Json } {
  // A member whose name can be no attribute stays, null or not, so validation refuses it.
  const unsettable = (name: string) =>
    name === 'data_base64' || (name !== 'data' && attributeName.test(name) && !(coreAttributes as readonly string[]).includes(name));
  return Object.fromEntries(Object.entries(value).filter(([name, v]) => v !== null || !unsettable(name)));
}

function fromStructured(json: Json, mode: 'structured' | 'batch', where: string): IncomingEvent {
  if (!isRecord(json)) throw invalid(`${where}: a structured CloudEvent must be a JSON object`);
  const value = withoutNullAttributes(json);
  const context = validateContext(value, where);
  let data: Json | undefined = value.data;
  if (value.data_base64 !== undefined) {
    if (data !== undefined) throw invalid(`${where}: data and data_base64 are both present; an event carries one or the other`);
    if (typeof value.data_base64 !== 'string') throw invalid(`${where}: data_base64 must be a string`);
    const decoded = Buffer.from(value.data_base64, 'base64').toString('utf8');
    data = decodeData(decoded, mediaType(context.datacontenttype), false);
  } else if (typeof data === 'string' && isJsonMediaType(mediaType(context.datacontenttype)) && context.datacontenttype !== undefined) {
    // Some senders put JSON text in a string `data` while declaring a JSON content type.
    data = decodeData(data, 'application/json', false);
  }
  return { mode, context, data, key: contextKey(context) };
}

/**
 * A plain payload has no CloudEvent id. Its senders (Falco's http_output, Falcosidekick's
 * webhook) never retry, so only a byte-identical resend is the same delivery: a payload with a
 * reused or forged `uuid` but other content is another alert and is decided on its own.
 */
function plainKey(body: string): string {
  return `sha256\u0000${createHash('sha256').update(body).digest('hex')}`;
}

/**
 * Reads one HTTP delivery into events. Accepts binary mode (ce-* headers), structured mode
 * (with or without a charset parameter), batch mode, binary events with no Content-Type
 * (KafkaSource), and plain Falco JSON with no CloudEvents headers (Falcosidekick's webhook,
 * Falco's http_output). Never rejects for a media type alone: 415 is final and loses the alert.
 */
export function parseDelivery(headers: Headers, body: string): IncomingEvent[] {
  if (header(headers, 'ce-specversion') !== undefined) return [parseBinary(headers, body)];
  const type = mediaType(header(headers, 'content-type'));
  if (type === 'application/cloudevents+json') {
    return [fromStructured(parseJsonText(body, 'the structured CloudEvent'), 'structured', 'structured-mode event')];
  }
  if (type === 'application/cloudevents-batch+json') {
    const batch = parseJsonText(body, 'the CloudEvents batch');
    if (!Array.isArray(batch)) throw invalid('a CloudEvents batch must be a JSON array');
    return batch.map((item, index) => fromStructured(item, 'batch', `batch item ${index}`));
  }
  if (body.trim().length === 0) throw new DropError('DROP_NOT_AN_EVENT', 'the request has no body and no CloudEvents headers');
  let value: Json;
  try {
    value = parseJson(body);
  } catch (error) {
    throw new DropError('DROP_NOT_AN_EVENT', `the body is not a CloudEvent and not JSON: ${(error as Error).message}`);
  }
  // A structured event sent without its media type (e.g. no Content-Type at all).
  if (isRecord(value) && typeof value.specversion === 'string') return [fromStructured(value, 'structured', 'structured-mode event')];
  return [{ mode: 'plain', context: undefined, data: value, key: plainKey(body) }];
}

import { createHash } from 'node:crypto';
import t from 'tap';
import { CloudEvent, HTTP } from 'cloudevents';
import { DropError } from '../../src/errors.ts';
import { parseDelivery, mediaType, type Headers, type IncomingEvent } from '../../src/incoming.ts';
import { evtTime, falcoJson, sidekickHeaders, sidekickId } from './fixtures/falco.ts';

const body = falcoJson();
const rfc3339 = 'an RFC 3339 timestamp with a UTC offset (e.g. 2025-06-12T09:21:07Z)';
const kafkaSource = '/apis/v1/namespaces/falco/kafkasources/falco-alerts#falco-alerts';

function only(events: IncomingEvent[]): IncomingEvent {
  if (events.length !== 1) throw new Error(`expected one event, got ${events.length}`);
  return events[0] as IncomingEvent;
}

function outputFields(data: unknown): Record<string, unknown> {
  return (data as { output_fields: Record<string, unknown> }).output_fields;
}

function sha256Key(text: string): string {
  return `sha256\u0000${createHash('sha256').update(text).digest('hex')}`;
}

/** The DropError parseDelivery throws; anything else (or no throw) fails the test. */
function rejection(headers: Headers, text: string): DropError {
  try {
    parseDelivery(headers, text);
  } catch (error) {
    if (error instanceof DropError) return error;
    throw error;
  }
  throw new Error('parseDelivery accepted the delivery');
}

const structuredAttributes = {
  specversion: '1.0',
  id: sidekickId,
  source: 'https://falco.org',
  type: 'falco.rule.output.v1',
  time: '2025-06-12T09:21:07.11840296Z',
  rule: 'Terminal shell in container',
  priority: 'Notice',
};

function structured(extra: Record<string, unknown>, data = body): string {
  const attributes = JSON.stringify({ ...structuredAttributes, ...extra });
  return data === '' ? attributes : `${attributes.slice(0, -1)},"data":${data}}`;
}

t.test('reads a binary-mode event exactly as Falcosidekick sends it', async (t) => {
  const event = only(parseDelivery(sidekickHeaders(), body));
  t.equal(event.mode, 'binary');
  t.same(event.context, {
    specversion: '1.0',
    id: sidekickId,
    source: 'https://falco.org',
    type: 'falco.rule.output.v1',
    time: '2025-06-12T09:21:07.11840296Z',
    subject: undefined,
    datacontenttype: 'application/json',
    extensions: { eventsource: 'syscall', hostname: 'worker-node-2', priority: 'Notice', rule: 'Terminal shell in container' },
  });
  t.equal(event.key, `ce\u0000https://falco.org\u0000${sidekickId}`, 'the redelivery key is source + id');
  t.equal(outputFields(event.data)['evt.time'], evtTime, 'keeps evt.time exact above 2^53');
  t.equal(outputFields(event.data)['proc.exe_flags'], null, 'keeps null output fields');
  t.match((event.data as { output: string }).output, 'exe_flags=<NA>', 'decodes Go\'s \\u003c escapes');
});

t.test('keeps the Broker\'s extension attributes and ignores its other headers', async (t) => {
  const headers = sidekickHeaders({
    'ce-knativearrivaltime': '2025-06-12T09:21:07.2201Z',
    'kn-namespace': 'falco-drop',
    prefer: 'reply',
    traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
  });
  const { extensions } = only(parseDelivery(headers, body)).context!;
  t.equal(extensions.knativearrivaltime, '2025-06-12T09:21:07.2201Z');
  t.same(Object.keys(extensions).sort(), ['eventsource', 'hostname', 'knativearrivaltime', 'priority', 'rule']);
});

t.test('reads an event the SDK writes in binary mode', async (t) => {
  const sent = new CloudEvent({ id: 'sdk-1', source: '/sdk', type: 'falco.rule.output.v1', subject: 'default/mysql', datacontenttype: 'application/json', data: { rule: 'x' } });
  const message = HTTP.binary(sent);
  const event = only(parseDelivery(message.headers, message.body as string));
  t.equal(event.context?.subject, 'default/mysql');
  t.same(event.data, { rule: 'x' });
});

t.test('percent-decodes ce-* header values', async (t) => {
  const headers = sidekickHeaders({ 'ce-rule': 'Terminal%20shell%20in%20container', 'ce-subject': 'caf%C3%A9%20%E2%9C%93', 'ce-id': 'a%2Fb' });
  const event = only(parseDelivery(headers, body));
  t.equal(event.context?.extensions.rule, 'Terminal shell in container');
  t.equal(event.context?.subject, 'café ✓');
  t.equal(event.context?.id, 'a/b');
  t.equal(event.key, 'ce\u0000https://falco.org\u0000a/b', 'the key uses the decoded id');
});

t.test('percent-decodes as the HTTP binding says: its example, lower case, needless escapes, a leading BOM', async (t) => {
  const cases: [string, string][] = [
    ['Euro%20%E2%82%AC%20%F0%9F%98%80', 'Euro \u20AC \u{1F600}'],
    ['caf%c3%a9', 'café'],
    ['%41%42C', 'ABC'],
    ['%EF%BB%BFrule', '\uFEFFrule'],
    ['100%25%20sure', '100% sure'],
  ];
  for (const [sent, read] of cases) t.equal(only(parseDelivery(sidekickHeaders({ 'ce-rule': sent }), body)).context?.extensions.rule, read, sent);
});

t.test('keeps a bare % that starts no escape as sent (Falcosidekick does not encode)', async (t) => {
  for (const value of ['CPU > 90%', '50%off', '%zz', '100% %4', 'a%2']) {
    const event = only(parseDelivery(sidekickHeaders({ 'ce-rule': value }), body));
    t.equal(event.context?.extensions.rule, value, value);
  }
  t.equal(only(parseDelivery(sidekickHeaders({ 'ce-rule': 'CPU%20%3E%2090%' }), body)).context?.extensions.rule, 'CPU > 90%', 'escapes decoded, the bare % kept');
});

t.test('rejects a ce-* header whose escapes decode to invalid UTF-8', async (t) => {
  const cases: [string, string, string][] = [
    ['a byte that is never UTF-8', 'Rule %FF', '%FF'],
    ['a lead byte followed by no continuation', '%C3%28', '%C3%28'],
    ['the overlong space of the HTTP binding', 'a%C0%A0b', '%C0%A0'],
    ['a sequence cut short', 'check %E2%9C', '%E2%9C'],
    ['an encoded surrogate', '%ED%A0%80', '%ED%A0%80'],
  ];
  for (const [name, value, run] of cases) {
    const error = rejection(sidekickHeaders({ 'ce-rule': value }), body);
    t.equal(error.code, 'DROP_INVALID_CLOUDEVENT', name);
    t.equal(error.status, 400, name);
    t.equal(error.message, `binary-mode event: header ce-rule percent-decodes "${run}" to bytes that are not UTF-8`, name);
  }
});

t.test('treats an empty Content-Type header as none', async (t) => {
  const event = only(parseDelivery(sidekickHeaders({ 'content-type': '  ' }), body));
  t.equal(event.context?.datacontenttype, undefined);
  t.equal(typeof event.data, 'object', 'the body is still read as JSON');
});

t.test('rejects a structured extension whose value is an object', async (t) => {
  const error = rejection({ 'content-type': 'application/cloudevents+json' }, JSON.stringify({ specversion: '1.0', id: '1', source: '/s', type: 't', custom: { a: 1 } }));
  t.equal(error.code, 'DROP_INVALID_CLOUDEVENT');
  t.match(error.message, /extension "custom" must be a string, number or boolean/);
});

t.test('joins a repeated header with commas', async (t) => {
  const headers = sidekickHeaders({ 'ce-rule': ['a', 'b'], 'content-type': ['application/json'] });
  const event = only(parseDelivery(headers, body));
  t.equal(event.context?.extensions.rule, 'a,b');
  t.equal(event.context?.datacontenttype, 'application/json');
  t.equal(outputFields(event.data)['evt.time'], evtTime);
});

t.test('decodes binary-mode data by its Content-Type', async (t) => {
  const cases: { name: string; contentType: string | undefined; text: string; data: unknown }[] = [
    { name: 'parses JSON with a charset parameter', contentType: 'application/json; charset=utf-8', text: '{"a":1}', data: { a: 1 } },
    { name: 'parses text/json', contentType: 'text/json', text: '[1,2]', data: [1, 2] },
    { name: 'parses a +json media type in any case', contentType: 'Application/Vnd.Falco+JSON', text: '{"a":true}', data: { a: true } },
    { name: 'reads JSON sent as text/plain by its shape', contentType: 'text/plain', text: '{"a":1}', data: { a: 1 } },
    { name: 'reads JSON sent as application/octet-stream', contentType: 'application/octet-stream', text: '[1]', data: [1] },
    { name: 'reads JSON sent as curl\'s default form type', contentType: 'application/x-www-form-urlencoded', text: '{"a":null}', data: { a: null } },
    { name: 'keeps text/plain that is not JSON as text', contentType: 'text/plain; charset=utf-8', text: 'Notice A shell', data: 'Notice A shell' },
    { name: 'keeps an empty body as no data', contentType: 'application/json', text: '', data: undefined },
    { name: 'keeps an empty body as no data without Content-Type', contentType: undefined, text: '', data: undefined },
  ];
  for (const c of cases) {
    const event = only(parseDelivery(sidekickHeaders({ 'content-type': c.contentType }), c.text));
    t.same(event.data, c.data, c.name);
    t.equal(event.context?.datacontenttype, c.contentType, `${c.name}: datacontenttype is the Content-Type`);
  }
});

t.test('rejects binary-mode data that declares JSON but is not', async (t) => {
  const error = rejection(sidekickHeaders(), '{"rule":');
  t.equal(error.code, 'DROP_INVALID_JSON');
  t.match(error.message, /^the event data is not valid JSON: /);
  t.equal(error.status, 400);
});

t.test('reads KafkaSource binary events that have no Content-Type', async (t) => {
  const headers = {
    'ce-specversion': '1.0',
    'ce-id': 'partition:0/offset:42',
    'ce-source': kafkaSource,
    'ce-type': 'dev.knative.kafka.event',
    'ce-subject': 'partition:0#42',
  };
  const json = only(parseDelivery(headers, body));
  t.equal(json.mode, 'binary');
  t.equal(json.context?.datacontenttype, undefined);
  t.equal(outputFields(json.data)['evt.time'], evtTime, 'recognises the Falco JSON and keeps evt.time exact');
  t.equal(json.key, `ce\u0000${kafkaSource}\u0000partition:0/offset:42`);
  const text = only(parseDelivery(headers, 'Notice A shell was spawned'));
  t.equal(text.data, 'Notice A shell was spawned', 'keeps text that is not JSON as a string');
});

t.test('rejects a binary-mode event with a missing or empty required attribute', async (t) => {
  const cases: { name: string; headers: Record<string, string | undefined> }[] = [
    { name: 'id', headers: { 'ce-id': undefined } },
    { name: 'id', headers: { 'ce-id': '' } },
    { name: 'source', headers: { 'ce-source': undefined } },
    { name: 'source', headers: { 'ce-source': '' } },
    { name: 'type', headers: { 'ce-type': undefined } },
    { name: 'type', headers: { 'ce-type': '' } },
    { name: 'specversion', headers: { 'ce-specversion': '' } },
  ];
  for (const c of cases) {
    const error = rejection(sidekickHeaders(c.headers), body);
    t.equal(error.code, 'DROP_INVALID_CLOUDEVENT', JSON.stringify(c.headers));
    t.equal(error.message, `binary-mode event: required attribute "${c.name}" is missing or empty`, JSON.stringify(c.headers));
  }
});

t.test('rejects binary-mode attributes the SDK would let pass or invent', async (t) => {
  const cases: { name: string; headers: Record<string, string>; message: string | RegExp; errors?: boolean }[] = [
    { name: 'specversion 0.3', headers: { 'ce-specversion': '0.3' }, message: 'binary-mode event: specversion "0.3" is not supported (only 1.0)' },
    { name: 'a time that is no date', headers: { 'ce-time': 'yesterday' }, message: `binary-mode event: time "yesterday" is not ${rfc3339}` },
    { name: 'a date without a time', headers: { 'ce-time': '2025-06-12' }, message: `binary-mode event: time "2025-06-12" is not ${rfc3339}` },
    { name: 'a time without a UTC offset', headers: { 'ce-time': '2025-06-12T09:21:07' }, message: `binary-mode event: time "2025-06-12T09:21:07" is not ${rfc3339}` },
    { name: 'a 31 June', headers: { 'ce-time': '2025-06-31T09:21:07Z' }, message: `binary-mode event: time "2025-06-31T09:21:07Z" is not ${rfc3339}` },
    { name: 'a source that is no URI reference', headers: { 'ce-source': 'falco%20org' }, message: /^binary-mode event: invalid payload/, errors: true },
    { name: 'an extension name with a dash', headers: { 'ce-my-ext': 'x' }, message: /^binary-mode event: invalid extension name: my-ext/, errors: true },
    { name: 'a 0.3 attribute on a 1.0 event', headers: { 'ce-schemaurl': 'https://falco.org/schema' }, message: 'binary-mode event: cannot set schemaurl on version 1.0 event' },
  ];
  for (const c of cases) {
    const error = rejection(sidekickHeaders(c.headers), body);
    t.equal(error.code, 'DROP_INVALID_CLOUDEVENT', c.name);
    if (typeof c.message === 'string') t.equal(error.message, c.message, c.name);
    else t.match(error.message, c.message, c.name);
    t.equal(Array.isArray(error.details?.errors), c.errors === true, `${c.name}: the SDK's errors are in the details only when it gives them`);
  }
});

t.test('names the bad source in the SDK\'s errors', async (t) => {
  const error = rejection(sidekickHeaders({ 'ce-source': 'http://[bad' }), body);
  t.match(error.details, { errors: [{ instancePath: '/source', params: { format: 'uri-reference' } }] });
});

t.test('ce-* headers without ce-specversion are not a binary-mode event', async (t) => {
  const event = only(parseDelivery(sidekickHeaders({ 'ce-specversion': undefined }), body));
  t.equal(event.mode, 'plain');
  t.equal(event.context, undefined);
});

t.test('reads structured mode with or without a charset and with any or no Content-Type', async (t) => {
  const cases: { name: string; contentType: string | undefined }[] = [
    { name: 'with its media type', contentType: 'application/cloudevents+json' },
    { name: 'with ; charset=utf-8', contentType: 'application/cloudevents+json; charset=utf-8' },
    { name: 'with ; charset=UTF-8 in capitals', contentType: 'Application/CloudEvents+JSON; charset=UTF-8' },
    { name: 'sent with no Content-Type', contentType: undefined },
    { name: 'sent as application/json', contentType: 'application/json' },
    { name: 'sent as text/plain', contentType: 'text/plain' },
  ];
  const text = structured({ datacontenttype: 'application/json', subject: 'default/mysql-db-7d59548d75-g9msc' });
  for (const c of cases) {
    const event = only(parseDelivery(c.contentType === undefined ? {} : { 'content-type': c.contentType }, text));
    t.equal(event.mode, 'structured', c.name);
    t.same(
      event.context,
      {
        specversion: '1.0',
        id: sidekickId,
        source: 'https://falco.org',
        type: 'falco.rule.output.v1',
        time: '2025-06-12T09:21:07.11840296Z',
        subject: 'default/mysql-db-7d59548d75-g9msc',
        datacontenttype: 'application/json',
        extensions: { rule: 'Terminal shell in container', priority: 'Notice' },
      },
      c.name,
    );
    t.equal(outputFields(event.data)['evt.time'], evtTime, `${c.name}: keeps evt.time exact`);
    t.equal(event.key, `ce\u0000https://falco.org\u0000${sidekickId}`, `${c.name}: the key is source + id`);
  }
});

t.test('reads an event the SDK writes in structured mode', async (t) => {
  const sent = new CloudEvent({ id: 'sdk-2', source: '/sdk', type: 't', data: { rule: 'x' }, flag: true, count: 3 });
  const message = HTTP.structured(sent);
  const event = only(parseDelivery(message.headers, message.body as string));
  t.same(event.data, { rule: 'x' });
  t.same(event.context?.extensions, { flag: true, count: 3 }, 'keeps extension values with their types');
});

t.test('decodes structured-mode data_base64 and JSON text in data', async (t) => {
  const base64 = (text: string) => JSON.stringify(Buffer.from(text).toString('base64'));
  const cases: { name: string; extra: Record<string, unknown>; data: string; expected: unknown }[] = [
    { name: 'decodes data_base64 declared as JSON', extra: { datacontenttype: 'application/json' }, data: '', expected: 'falco' },
    { name: 'decodes data_base64 that is JSON without a datacontenttype', extra: {}, data: '', expected: 'falco' },
    { name: 'reads data_base64 of another type by its shape', extra: { datacontenttype: 'text/plain', data_base64: Buffer.from('{"a":1}').toString('base64') }, data: '', expected: { a: 1 } },
    { name: 'keeps data_base64 that is not JSON as text', extra: { data_base64: Buffer.from('plain words').toString('base64') }, data: '', expected: 'plain words' },
    { name: 'parses string data declared as JSON', extra: { datacontenttype: 'application/json' }, data: JSON.stringify('{"a":1}'), expected: { a: 1 } },
    { name: 'keeps string data declared as JSON that is not JSON', extra: { datacontenttype: 'application/json' }, data: JSON.stringify('not json'), expected: 'not json' },
    { name: 'keeps string data without a datacontenttype', extra: {}, data: JSON.stringify('{"a":1}'), expected: '{"a":1}' },
    { name: 'keeps string data of another type', extra: { datacontenttype: 'text/plain' }, data: JSON.stringify('{"a":1}'), expected: '{"a":1}' },
    { name: 'has no data when there is none', extra: {}, data: '', expected: undefined },
  ];
  for (const c of cases) {
    const extra = c.expected === 'falco' ? { ...c.extra, data_base64: JSON.parse(base64(body)) } : c.extra;
    const event = only(parseDelivery({ 'content-type': 'application/cloudevents+json' }, structured(extra, c.data)));
    if (c.expected === 'falco') t.equal(outputFields(event.data)['evt.time'], evtTime, c.name);
    else t.same(event.data, c.expected, c.name);
  }
});

t.test('rejects bad structured events', async (t) => {
  const ce = { 'content-type': 'application/cloudevents+json' };
  const cases: { name: string; text: string; code: string; message: string | RegExp }[] = [
    { name: 'invalid JSON', text: '{"specversion":', code: 'DROP_INVALID_JSON', message: /^the structured CloudEvent is not valid JSON: / },
    { name: 'an array', text: '[]', code: 'DROP_INVALID_CLOUDEVENT', message: 'structured-mode event: a structured CloudEvent must be a JSON object' },
    { name: 'a string', text: '"event"', code: 'DROP_INVALID_CLOUDEVENT', message: 'structured-mode event: a structured CloudEvent must be a JSON object' },
    { name: 'null', text: 'null', code: 'DROP_INVALID_CLOUDEVENT', message: 'structured-mode event: a structured CloudEvent must be a JSON object' },
    { name: 'data_base64 not a string', text: structured({ data_base64: 42 }, ''), code: 'DROP_INVALID_CLOUDEVENT', message: 'structured-mode event: data_base64 must be a string' },
    { name: 'a numeric time', text: structured({ time: 1749720067 }), code: 'DROP_INVALID_CLOUDEVENT', message: `structured-mode event: time "1749720067" is not ${rfc3339}` },
    { name: 'a time without a UTC offset', text: structured({ time: '2025-06-12T09:21:07' }), code: 'DROP_INVALID_CLOUDEVENT', message: `structured-mode event: time "2025-06-12T09:21:07" is not ${rfc3339}` },
    { name: 'a numeric id', text: structured({ id: 7 }), code: 'DROP_INVALID_CLOUDEVENT', message: 'structured-mode event: required attribute "id" is missing or empty' },
    { name: 'a null id', text: structured({ id: null }), code: 'DROP_INVALID_CLOUDEVENT', message: 'structured-mode event: required attribute "id" is missing or empty' },
    { name: 'a null source', text: structured({ source: null }), code: 'DROP_INVALID_CLOUDEVENT', message: 'structured-mode event: required attribute "source" is missing or empty' },
    {
      name: 'data and data_base64 together',
      text: structured({ data_base64: Buffer.from(body).toString('base64') }),
      code: 'DROP_INVALID_CLOUDEVENT',
      message: 'structured-mode event: data and data_base64 are both present; an event carries one or the other',
    },
    { name: 'a null data and data_base64', text: structured({ data_base64: 'e30=' }, 'null'), code: 'DROP_INVALID_CLOUDEVENT', message: /data and data_base64 are both present/ },
    { name: 'a missing type', text: structured({ type: undefined }), code: 'DROP_INVALID_CLOUDEVENT', message: 'structured-mode event: required attribute "type" is missing or empty' },
    { name: 'specversion 0.3', text: structured({ specversion: '0.3' }), code: 'DROP_INVALID_CLOUDEVENT', message: 'structured-mode event: specversion "0.3" is not supported (only 1.0)' },
    { name: 'a bad source', text: structured({ source: 'falco org' }), code: 'DROP_INVALID_CLOUDEVENT', message: /^structured-mode event: invalid payload/ },
  ];
  for (const c of cases) {
    const error = rejection(ce, c.text);
    t.equal(error.code, c.code, c.name);
    if (typeof c.message === 'string') t.equal(error.message, c.message, c.name);
    else t.match(error.message, c.message, c.name);
  }
});

t.test('a null optional attribute or extension in structured mode is absent, as the JSON format says', async (t) => {
  const nulls = { time: null, subject: null, datacontenttype: null, dataschema: null, rule: null, comexampleextension: null, data_base64: null };
  const event = only(parseDelivery({ 'content-type': 'application/cloudevents+json' }, structured(nulls)));
  t.same(event.context, {
    specversion: '1.0',
    id: sidekickId,
    source: 'https://falco.org',
    type: 'falco.rule.output.v1',
    time: undefined,
    subject: undefined,
    datacontenttype: undefined,
    extensions: { priority: 'Notice' },
  });
  t.equal(outputFields(event.data)['evt.time'], evtTime, 'the data is read (data_base64: null is no data_base64)');
  const nullData = only(parseDelivery({ 'content-type': 'application/cloudevents+json' }, structured({}, 'null')));
  t.equal(nullData.data, null, 'a null data is a null payload, kept');
});

t.test('rejects a structured event sent without its media type when it is invalid', async (t) => {
  const error = rejection({}, structured({ source: '' }));
  t.equal(error.message, 'structured-mode event: required attribute "source" is missing or empty');
});

t.test('reads each event of a batch with its own key', async (t) => {
  const batch = `[${structured({ id: 'one' })},${structured({ id: 'two', source: kafkaSource })}]`;
  const events = parseDelivery({ 'content-type': 'application/cloudevents-batch+json; charset=utf-8' }, batch);
  t.same(
    events.map((e) => [e.mode, e.context?.id, e.key]),
    [
      ['batch', 'one', 'ce\u0000https://falco.org\u0000one'],
      ['batch', 'two', `ce\u0000${kafkaSource}\u0000two`],
    ],
  );
  t.equal(outputFields(events[1]?.data)['evt.time'], evtTime, 'keeps evt.time exact in a batch');
  t.same(parseDelivery({ 'content-type': 'application/cloudevents-batch+json' }, '[]'), [], 'an empty batch has no events');
});

t.test('rejects bad batches', async (t) => {
  const batch = { 'content-type': 'application/cloudevents-batch+json' };
  const cases: { name: string; text: string; code: string; message: string | RegExp }[] = [
    { name: 'invalid JSON', text: '[{', code: 'DROP_INVALID_JSON', message: /^the CloudEvents batch is not valid JSON: / },
    { name: 'an object, not an array', text: structured({}), code: 'DROP_INVALID_CLOUDEVENT', message: 'a CloudEvents batch must be a JSON array' },
    { name: 'a bad item, named by index', text: `[${structured({})},"x"]`, code: 'DROP_INVALID_CLOUDEVENT', message: 'batch item 1: a structured CloudEvent must be a JSON object' },
    { name: 'an item missing an id', text: `[${structured({ id: '' })}]`, code: 'DROP_INVALID_CLOUDEVENT', message: 'batch item 0: required attribute "id" is missing or empty' },
  ];
  for (const c of cases) {
    const error = rejection(batch, c.text);
    t.equal(error.code, c.code, c.name);
    if (typeof c.message === 'string') t.equal(error.message, c.message, c.name);
    else t.match(error.message, c.message, c.name);
  }
});

t.test('reads plain Falco JSON from Falcosidekick\'s webhook, keyed by the sha256 of the body', async (t) => {
  const text = `${body}\n`;
  const headers = { 'content-type': 'application/json; charset=utf-8', 'user-agent': 'Falcosidekick' };
  const event = only(parseDelivery(headers, text));
  t.equal(event.mode, 'plain');
  t.equal(event.context, undefined);
  t.equal(outputFields(event.data)['evt.time'], evtTime);
  t.equal(event.key, sha256Key(text), 'the key is the sha256 of the body');
});

t.test('plain JSON in other shapes is passed on as data', async (t) => {
  const cases: { name: string; headers: Headers; text: string; data: unknown }[] = [
    { name: 'Falco http_output with no Content-Type', headers: {}, text: '{"rule":"r","priority":"Notice","output_fields":{}}', data: { rule: 'r', priority: 'Notice', output_fields: {} } },
    { name: 'a Content-Type with no media type', headers: { 'content-type': '; charset=utf-8' }, text: '[1]', data: [1] },
    { name: 'an object whose specversion is not a string', headers: {}, text: '{"specversion":1}', data: { specversion: 1 } },
    { name: 'a JSON string', headers: { 'content-type': 'text/plain' }, text: '"hello"', data: 'hello' },
  ];
  for (const c of cases) {
    const event = only(parseDelivery(c.headers, c.text));
    t.equal(event.mode, 'plain', c.name);
    t.same(event.data, c.data, c.name);
  }
});

t.test('the redelivery key of a plain payload is its bytes, not its uuid', async (t) => {
  const first = only(parseDelivery({}, falcoJson({ uuid: 'same' }))).key;
  t.equal(only(parseDelivery({}, falcoJson({ uuid: 'same' }))).key, first, 'a byte-identical resend has the same key');
  t.not(only(parseDelivery({}, falcoJson({ uuid: 'same', rule: 'Other rule' }))).key, first, 'the same uuid with other content is another alert');
  t.not(only(parseDelivery({}, `${falcoJson({ uuid: 'same' })}\n`)).key, first, 'any byte differs the key');
});

t.test('rejects a delivery that is neither a CloudEvent nor JSON', async (t) => {
  const cases: { name: string; headers: Headers; text: string; message: string | RegExp }[] = [
    { name: 'an empty body', headers: {}, text: '', message: 'the request has no body and no CloudEvents headers' },
    { name: 'a body of whitespace', headers: { 'content-type': 'application/json' }, text: ' \n', message: 'the request has no body and no CloudEvents headers' },
    { name: 'text that is not JSON', headers: { 'content-type': 'text/plain' }, text: 'hello', message: /^the body is not a CloudEvent and not JSON: / },
    { name: 'truncated JSON', headers: { 'content-type': 'application/json' }, text: body.slice(0, 40), message: /^the body is not a CloudEvent and not JSON: / },
  ];
  for (const c of cases) {
    const error = rejection(c.headers, c.text);
    t.equal(error.code, 'DROP_NOT_AN_EVENT', c.name);
    t.equal(error.status, 400, c.name);
    if (typeof c.message === 'string') t.equal(error.message, c.message, c.name);
    else t.match(error.message, c.message, c.name);
  }
});

t.test('mediaType drops parameters and case', async (t) => {
  const cases: [string | undefined, string | undefined][] = [
    ['application/json; charset=utf-8', 'application/json'],
    [' Application/CloudEvents+JSON ;charset=UTF-8', 'application/cloudevents+json'],
    ['text/plain', 'text/plain'],
    ['; charset=utf-8', undefined],
    ['', undefined],
    [undefined, undefined],
  ];
  for (const [input, expected] of cases) t.equal(mediaType(input), expected, String(input));
});

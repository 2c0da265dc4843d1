// The receive path's own log line, as written: what drop logs for an alert it ignores.
import t from 'tap';
import { createTestApp, lower } from './helpers/app.ts';
import { brokerHeaders, falcoPayload } from './helpers/falco.ts';

t.test('an ignored alert is logged on one line with evt.time exact (above 2^53)', async (t) => {
  const drop = await createTestApp({ now: new Date('2025-06-12T09:21:08Z') });
  t.teardown(() => drop.close());
  const res = await drop.app.inject({ method: 'POST', url: '/', headers: lower(brokerHeaders('ignored-1', { rule: 'Write below etc' })), payload: falcoPayload({ rule: 'Write below etc' }) });
  t.equal(res.statusCode, 202);
  const lines = drop.logText.filter((l) => l.includes('"decision":'));
  t.equal(lines.length, 1, 'one line for the event');
  t.match(lines[0], /"decision":"skip"/);
  t.match(lines[0], /"evtTime":1749720067118402960[,}]/, 'every digit, as a bare number');
});

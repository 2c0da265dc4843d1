// A flood of alerts about one pod, as the Broker delivers it under load: many keep-alive
// connections at once, each alert its own CloudEvent. The fake API answers pod reads and the
// DELETE's answer chunked and pod-sized, and keeps the deleted pod readable while it terminates,
// as a real kube-apiserver does (issue 7 §1).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { FakeKube, makePod } from './helpers/fake-kube.ts';
import { brokerHeaders, falcoPayload } from './helpers/falco.ts';
import { createTestApp } from './helpers/app.ts';

const podName = 'mysql-db-7d59548d75-g9msc';
const policyYaml = 'rules:\n  - name: kill-shells\n    match: {rules: ["Terminal shell in container"]}\n    actions: [{action: delete}]\n';
const alerts = 1000;
const connections = 64;

t.test('64 connections flooding alerts about one pod get no spurious 503, and the pod is deleted exactly once', async (t) => {
  const fake = await new FakeKube({ terminatingPods: true }).start();
  fake.addNamespace('default');
  fake.addPod(makePod('default', podName, '5f0a3c2e-9b1d-4e7a-8c6f-2b3d4e5f6a7b'));
  const drop = await createTestApp({ fake, policyYaml, timeoutMs: 10_000 });
  await drop.app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = drop.app.server.address() as AddressInfo;
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  t.teardown(async () => {
    agent.destroy();
    await drop.close();
    await fake.stop();
  });

  const body = falcoPayload();
  const post = (id: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request({ port, host: '127.0.0.1', method: 'POST', path: '/', agent, headers: brokerHeaders(id) }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });

  // Each of the 64 senders posts its share of the alerts one after another on its connection.
  const answers: { status: number; body: string }[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (next < alerts) answers.push(await post(`flood-${next++}`));
    }),
  );

  t.equal(answers.length, alerts);
  const byStatus = new Map<number, number>();
  for (const a of answers) byStatus.set(a.status, (byStatus.get(a.status) ?? 0) + 1);
  t.same([...byStatus.keys()].filter((s) => s !== 200 && s !== 202), [], `only acted (200) or skipped (202): ${JSON.stringify(Object.fromEntries(byStatus))}`);
  const failed = answers.find((a) => a.status !== 200 && a.status !== 202);
  if (failed) t.comment(`first unexpected answer: ${failed.status} ${failed.body.slice(0, 300)}`);
  t.equal(byStatus.get(200), 1, 'one alert acted: the reply CloudEvent recording the delete');
  const deletes = fake.requests.filter((r) => r.method === 'DELETE');
  t.equal(deletes.length, 1, 'exactly one DELETE reached the API server');
  t.equal(deletes[0]?.path, `/api/v1/namespaces/default/pods/${podName}`);
  t.ok(fake.pods.get(`default/${podName}`)?.metadata.deletionTimestamp, 'the pod is terminating');
});

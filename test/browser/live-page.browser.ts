/**
 * The live page in a real browser: Debian's Chromium (/usr/bin/chromium, or CHROMIUM) driven by
 * playwright-core, against the built service in dry-run, fed real Falcosidekick CloudEvents.
 * It reads what a person sees: rows, reasons, counters, the filters, hostile text as text.
 *
 * Run by `npm run test:browser` (and by .ci/run, which installs Chromium), never by `npm test`:
 * its name is not *.test.ts, so tap's include (.taprc) leaves it out and `npm test` passes on a
 * machine without Chromium. `LIVE_PAGE_SCREENSHOT=img/live-page.png npm run test:browser`
 * also saves the screenshot the docs show.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Page } from 'playwright-core';
import t from 'tap';
import { falcoPayload, sidekickHeaders } from '../helpers/falco.ts';
import { logLine, startService, stopService } from '../helpers/service.ts';

const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
/** Generous: a 2-core CI machine running Chromium and the service at once. */
const waitMs = 30_000;

let sent = 0;
/** The trace id the Broker gives the nth alert sent (from 1). */
const traceOf = (n: number): string => `4bf92f3577b34da6a3ce929d0e0e${String(n).padStart(4, '0')}`;

/**
 * Sends one alert as Falcosidekick does (binary-mode CloudEvent), timed now, with the trace
 * context the Broker adds (traceOf(n) for the nth); its answer's status.
 */
async function sendAlert(port: number, options: { rule?: string; priority?: string; namespace?: string; pod?: string; body?: string }): Promise<number> {
  const id = `live-page-${++sent}`;
  const now = new Date().toISOString();
  const headers: Record<string, string> = {
    ...sidekickHeaders(id, { rule: options.rule, priority: options.priority }),
    'Ce-Time': now,
    traceparent: `00-${traceOf(sent)}-00f067aa0ba902b7-01`,
  };
  const body =
    options.body ??
    falcoPayload({
      uuid: id,
      rule: options.rule,
      priority: options.priority,
      time: now,
      fields: { 'k8s.ns.name': options.namespace ?? 'default', 'k8s.pod.name': options.pod ?? 'mysql-db-7d59548d75-g9msc' },
    });
  const response = await fetch(`http://127.0.0.1:${port}/`, { method: 'POST', headers, body });
  await response.arrayBuffer();
  return response.status;
}

/** The rows the page shows, each as its cells' text. */
async function rows(page: Page): Promise<string[][]> {
  return page.$$eval('#rows tr', (trs) => trs.map((tr) => Array.from(tr.querySelectorAll('td'), (td) => td.textContent ?? '')));
}

async function rowCount(page: Page, count: number): Promise<void> {
  await page.waitForFunction((n) => document.querySelectorAll('#rows tr').length === n, count, { timeout: waitMs });
}

const hostile = '<img src=x onerror="window.pwned=1;alert(1)"></script><script>window.pwned=2</script>';

t.test('the live page shows each decision as it is made, with its reason, counters, filters, and hostile text as text', async (t) => {
  const service = await startService(t, { DROP_DRY_RUN: 'true', DROP_ADMIN_PORT: '0', DROP_IDENTITY: 'drop-00001-deployment-7c9f-x2v4q' });
  const admin = String((await logLine(service, (l) => typeof l.adminUrl === 'string', waitMs)).adminUrl);

  const profile = mkdtempSync(join(tmpdir(), 'drop-chromium-'));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    viewport: { width: 1500, height: 620 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  t.teardown(async () => {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
  });
  const page = browser.pages()[0] ?? (await browser.newPage());
  // Anything a script did that the page's own would not: a dialog, an error, a CSP refusal.
  const dialogs: string[] = [];
  const problems: string[] = [];
  page.on('dialog', (dialog) => {
    dialogs.push(dialog.message());
    void dialog.dismiss();
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error' && !/favicon/.test(message.location().url)) problems.push(`console: ${message.text()}`);
  });

  const opened = await page.goto(`${admin}/`);
  t.equal(opened?.status(), 200);
  await page.waitForFunction(() => document.getElementById('status')?.textContent === 'live', undefined, { timeout: waitMs });
  t.equal(await page.textContent('#replica'), 'drop-00001-deployment-7c9f-x2v4q', 'the replica the page is on');
  t.equal(await page.textContent('#mode'), 'DRY-RUN: nothing is changed');
  t.equal(await page.isVisible('#empty'), true, 'says there is no decision yet');

  // Each alert appears while the page is open, without a reload: how long from sending it to
  // its row is noted, not asserted.
  const delays: string[] = [];
  const sendAndSee = async (options: Parameters<typeof sendAlert>[1]): Promise<number> => {
    const started = performance.now();
    const status = await sendAlert(service.port, options);
    const answered = performance.now();
    await rowCount(page, sent);
    delays.push(`${Math.round(answered - started)} + ${Math.round(performance.now() - answered)}`);
    return status;
  };
  t.equal(await sendAndSee({}), 200, 'act, in dry-run');
  const [act] = await rows(page);
  t.match(act, [/\d\d:\d\d:\d\d/, 'Terminal shell in containerNotice', 'default/mysql-db-7d59548d75-g9msc', 'terminal-shell', 'act dry-run', /would delete pod default\/mysql-db-7d59548d75-g9msc/, traceOf(1)]);
  t.equal(await page.isVisible('#empty'), false);

  t.equal(await sendAndSee({}), 202, 'the same pod again: the cooldown holds');
  t.equal(await sendAndSee({ rule: 'Read sensitive file untrusted', priority: 'Warning', namespace: 'shop', pod: 'web-5d8f7-k2x9p' }), 202, 'no response rule');
  t.equal(await sendAndSee({ namespace: 'shop', pod: 'cart-6b9c4-q7m2w' }), 200, 'act in another namespace');
  t.equal(await sendAndSee({ body: '{"rule":"Terminal shell in container","priority":42,"output_fields":{}}' }), 400, 'refused');
  t.comment(`each alert: ms to its answer + ms from the answer to its row on the page: ${delays.join(', ')}`);
  const [refused, actShop, noRule, cooldown] = await rows(page);
  t.match(cooldown, [/./, 'Terminal shell in containerNotice', 'default/mysql-db-7d59548d75-g9msc', 'terminal-shell', /^skip skipped.*cooldown/, /cooldown: already responded/, traceOf(2)]);
  t.match(noRule, [/./, 'Read sensitive file untrustedWarning', 'shop/web-5d8f7-k2x9p', '—', /^skip skipped.*no-rule/, 'skip: no response rule matches rule "Read sensitive file untrusted" at priority Warning', traceOf(3)]);
  t.match(actShop, [/./, /Terminal shell/, 'shop/cart-6b9c4-q7m2w', 'terminal-shell', 'act dry-run', /would delete pod shop\/cart-6b9c4-q7m2w/, traceOf(4)]);
  t.match(refused, [/./, '—', '—', '—', /^reject refused.*DROP_INVALID_ALERT/, /priority must be a string/, traceOf(5)]);

  const counters = await page.$$eval('#counters b', (nodes) => Object.fromEntries(nodes.map((n) => [n.id || (n as HTMLElement).dataset.decision || (n as HTMLElement).dataset.outcome, n.textContent])));
  t.same(counters, { 'c-total': '5', act: '2', skip: '2', ignore: '0', reject: '1', done: '0', 'dry-run': '2', failed: '0', skipped: '2', retry: '0', refused: '1' });

  if (process.env.LIVE_PAGE_SCREENSHOT) writeFileSync(process.env.LIVE_PAGE_SCREENSHOT, await page.screenshot({ fullPage: true }));

  // Filters: by outcome, by namespace, both.
  await page.selectOption('#outcome', 'skipped');
  t.same((await rows(page)).map((r) => r[2]), ['shop/web-5d8f7-k2x9p', 'default/mysql-db-7d59548d75-g9msc'], 'skipped only');
  t.equal(await page.textContent('#shown'), '2 of the 5 most recent shown');
  await page.selectOption('#namespace', 'shop');
  t.same((await rows(page)).map((r) => r[2]), ['shop/web-5d8f7-k2x9p'], 'skipped in shop');
  await page.selectOption('#outcome', '');
  t.same((await rows(page)).map((r) => r[2]), ['shop/cart-6b9c4-q7m2w', 'shop/web-5d8f7-k2x9p'], 'everything in shop');
  t.same(await page.$$eval('#namespace option', (options) => options.map((o) => o.textContent)), ['all', 'default', 'shop']);
  // A new decision outside the filter is counted but not shown.
  t.equal(await sendAlert(service.port, { rule: 'Unexpected outbound connection', pod: 'mysql-db-7d59548d75-g9msc' }), 202);
  await page.waitForFunction(() => document.getElementById('c-total')?.textContent === '6', undefined, { timeout: waitMs });
  t.equal((await rows(page)).length, 2, 'the filter holds as decisions arrive');
  await page.selectOption('#namespace', '');
  await rowCount(page, 6);

  // Alert text is the attacker's: markup in a rule name and in a pod name shows as text and runs nothing.
  t.equal(await sendAlert(service.port, { rule: hostile, namespace: 'shop', pod: `x</script><img src=y onerror=alert(2)>` }), 202);
  await rowCount(page, 7);
  const [shown] = await rows(page);
  t.equal(shown![1], `${hostile}Notice`, 'the rule shows as the characters it is');
  t.match(shown![5], hostile, 'and so does the reason that names it');
  t.equal(await page.$$eval('#rows img, #rows script', (nodes) => nodes.length), 0, 'no element was made from it');
  t.equal(await page.evaluate(() => (window as unknown as { pwned?: number }).pwned), undefined, 'no script of it ran');
  t.same(dialogs, [], 'no dialog opened');
  t.same(problems, [], 'no script error and no CSP refusal');

  // Each replica's page holds its own decisions only; the JSON says the same as the page.
  const json = (await (await fetch(`${admin}/decisions`)).json()) as { counters: { total: number }; recent: { reason: string }[] };
  t.equal(json.counters.total, 7);
  t.equal(json.recent.length, 7);

  // Reloaded, the page starts again from what this replica keeps.
  await page.reload();
  await page.waitForFunction(() => document.getElementById('status')?.textContent === 'live', undefined, { timeout: waitMs });
  await rowCount(page, 7);
  t.equal(await stopService(service), 0, 'the service stops with a page open');
});

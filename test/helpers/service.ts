import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';

const root = new URL('../..', import.meta.url).pathname;

/** The built service (dist/main.js) running as a process, and what it has logged so far. */
export interface Service {
  readonly child: ChildProcess;
  readonly port: number;
  /** Its JSON log lines (stdout), parsed, in order; a line that is not JSON is kept as `{ notJson: line }`. */
  readonly lines: Record<string, unknown>[];
  /** Resolves when the process has exited: its exit code, or the signal that ended it. */
  readonly exited: Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>;
  stderr(): string;
}

/**
 * Starts the built service and waits for it to listen: `npm start` as a user types it, or
 * `node dist/main.js` as the image runs it (npm itself dies by the signal, so only the latter
 * shows the service's own exit code). PORT=0 and DROP_HOST=127.0.0.1 unless `env` says
 * otherwise; nothing else of the test's environment is passed on but PATH and a fresh HOME.
 * The process is killed (SIGKILL) at the test's teardown if it is still running.
 */
export async function startService(t: Test, env: Record<string, string>, how: 'npm start' | 'node' = 'node'): Promise<Service> {
  const home = mkdtempSync(join(tmpdir(), 'drop-home-'));
  const [command, args] = how === 'npm start' ? ['npm', ['start', '--silent']] : [process.execPath, ['dist/main.js']];
  const child = spawn(command, args as string[], {
    cwd: root,
    env: { PATH: process.env.PATH, HOME: home, PORT: '0', DROP_ADMIN_PORT: '0', DROP_HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    // npm does not pass SIGTERM on to the service; a terminal's Ctrl-C signals the whole group.
    detached: how === 'npm start',
  });
  // 'close', not 'exit': it comes once stdout is read to its end, so `lines` holds every line.
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) process.kill(how === 'npm start' ? -(child.pid as number) : (child.pid as number), 'SIGKILL');
  });
  const lines: Record<string, unknown>[] = [];
  let err = '';
  child.stderr?.on('data', (c: Buffer) => (err += c.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    let buffered = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const text = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        let line: Record<string, unknown>;
        try {
          line = JSON.parse(text) as Record<string, unknown>;
        } catch {
          line = { notJson: text };
        }
        lines.push(line);
        const found = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(String(line.msg));
        if (found) resolve(Number(found[1]));
      }
    });
    child.on('exit', (code, signal) => reject(new Error(`exited ${code ?? signal} before listening: ${err}`)));
  });
  return { child, port, lines, exited, stderr: () => err };
}

/** SIGTERM to the service (as Kubernetes sends it), or SIGINT to npm's whole group (Ctrl-C); its exit code. */
export async function stopService(service: Service, signal: 'SIGTERM' | 'SIGINT' = 'SIGTERM'): Promise<number | null> {
  if (signal === 'SIGINT') process.kill(-(service.child.pid as number), 'SIGINT');
  else service.child.kill('SIGTERM');
  return (await service.exited).code;
}

/** SIGKILL, as a node lost or an OOM kill ends a replica: no chance to finish anything. */
export async function killService(service: Service): Promise<NodeJS.Signals | null> {
  service.child.kill('SIGKILL');
  return (await service.exited).signal;
}

/**
 * The first log line that satisfies `predicate`, waiting for it to come through the pipe (a
 * line can arrive after the answer it belongs to). Rejects after `timeoutMs`.
 */
export async function logLine(service: Service, predicate: (line: Record<string, unknown>) => boolean, timeoutMs = 10_000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = service.lines.find(predicate);
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no such log line in ${timeoutMs} ms; logged: ${service.lines.map((l) => JSON.stringify(l)).join('\n')}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

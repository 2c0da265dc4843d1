/**
 * The policy drop runs with, replaced whole by a reload. A reload reads the policy files again
 * and validates them in full; a valid policy replaces the one in force in one assignment, so an
 * alert sees either the old policy or the new one, never a mix: app.ts takes `current()` once
 * per alert, and the alert finishes with what it took. An invalid one changes nothing: the
 * policy in force stays, and the error (every problem, with its place) is logged once and shown
 * on /readyz until the files are valid again.
 *
 * What a reload carries over: the claims that hold the cooldowns are keyed by response rule
 * name and pod UID (src/state/claims.ts), so a rule that keeps its name keeps its cooldowns and
 * a renamed rule starts afresh. The guards follow the reload: protected namespaces and the
 * alert age limit are read per alert; a new destructive budget or alert age limit gets a new
 * safety state (`rebuildSafety`), whose claims and budget are the same Leases in the cluster.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import type { Clock } from './guards.ts';
import { PolicyError, type Guards, type LoadedPolicy, type Policy, type PolicyProblem } from './policy.ts';
import { buildProtectedNamespaces } from './protection.ts';
import type { SafetyState } from './safety.ts';

/** What one alert is decided with: taken once when the alert arrives. */
export interface PolicyInForce {
  readonly policy: Policy;
  readonly protectedNamespaces: ReadonlySet<string>;
  readonly safety: SafetyState;
}

/** The last reload that was refused, while the files on disk are still not a valid policy. */
export interface PolicyLoadError {
  /** When it was first seen (ISO 8601). */
  readonly at: string;
  readonly message: string;
  /** Every problem with its place (empty when the files could not be read as a whole). */
  readonly problems: readonly PolicyProblem[];
}

/** The policy as /readyz shows it. */
export interface PolicyStatus {
  /** sha256 of the policy files' bytes in load order, as `falco-drop check` prints it. */
  readonly sha256: string;
  /** When the policy in force was loaded (ISO 8601). */
  readonly loadedAt: string;
  /** Why the files on disk are not in force, or null when they are. */
  readonly lastError: PolicyLoadError | null;
  /** The files read, in load order (none for the built-in default). */
  readonly files: readonly string[];
}

/** Where app.ts reads the policy per alert, and /readyz its status. */
export interface PolicySource {
  current(): PolicyInForce;
  status(): PolicyStatus;
}

export interface ActivePolicyOptions {
  /** The policy loaded at startup. */
  readonly loaded: LoadedPolicy;
  /** Reads the policy again (loadPolicyFiles with DROP_POLICY). */
  readonly load: () => Promise<LoadedPolicy>;
  /** drop's own namespace, always protected. */
  readonly ownNamespace: string | undefined;
  readonly safety: SafetyState;
  /**
   * A safety state for new guards (its destructive budget and how long claims are kept).
   * Without it the state in use is kept: the in-memory state of the global dry-run, where no
   * destructive action spends the budget and no claim outlives the process.
   */
  readonly rebuildSafety?: (guards: Guards) => SafetyState;
  readonly log: Pick<Logger, 'info' | 'warn' | 'error'>;
  readonly clock: Clock;
}

export class ActivePolicy implements PolicySource {
  private inForce: PolicyInForce;
  private loaded: LoadedPolicy;
  private loadedAt: Date;
  private lastError: PolicyLoadError | null = null;
  constructor(private readonly options: ActivePolicyOptions) {
    this.loaded = options.loaded;
    this.loadedAt = options.clock.now();
    this.inForce = { policy: options.loaded.policy, protectedNamespaces: this.protect(options.loaded.policy), safety: options.safety };
  }

  current(): PolicyInForce {
    return this.inForce;
  }

  status(): PolicyStatus {
    return { sha256: this.loaded.sha256, loadedAt: this.loadedAt.toISOString(), lastError: this.lastError, files: this.loaded.files };
  }

  /**
   * Reads the files again: a changed valid policy replaces the one in force, an invalid one is
   * refused. Never throws (the watch calls it from timers): a failure is a refusal.
   */
  async reload(): Promise<'reloaded' | 'unchanged' | 'refused'> {
    try {
      const next = await this.options.load();
      if (next.sha256 !== this.loaded.sha256 || !isDeepStrictEqual(next.files, this.loaded.files)) {
        this.replace(next);
        return 'reloaded';
      }
      if (this.lastError) {
        this.lastError = null;
        this.options.log.info({ policy: { sha256: next.sha256, files: next.files } }, 'the policy files are valid again, and the same as the policy in force');
      }
      return 'unchanged';
    } catch (error) {
      this.refuse(error);
      return 'refused';
    }
  }

  private replace(next: LoadedPolicy): void {
    const before = this.loaded;
    const { policy } = next;
    const old = before.policy;
    let safety = this.inForce.safety;
    const stateGuards = (g: Guards) => [g.destructivePerMinute, g.maxAlertAgeSeconds];
    if (this.options.rebuildSafety && !isDeepStrictEqual(stateGuards(old.guards), stateGuards(policy.guards))) safety = this.options.rebuildSafety(policy.guards);
    this.inForce = { policy, protectedNamespaces: this.protect(policy), safety };
    this.loaded = next;
    this.loadedAt = this.options.clock.now();
    this.lastError = null;

    const names = (p: Policy) => p.rules.map((r) => r.name);
    const added = names(policy).filter((n) => !names(old).includes(n));
    const removed = names(old).filter((n) => !names(policy).includes(n));
    this.options.log.info(
      { policy: { from: before.sha256, to: next.sha256, files: next.files }, rules: names(policy), added, removed },
      `policy reloaded, response rules: ${names(policy).join(', ')}${removed.length > 0 ? `; the cooldowns of ${removed.join(', ')} no longer apply` : ''}`,
    );
    // The limits on what drop may destroy deserve a look whenever they move.
    const changes = Object.keys(policy.guards).flatMap((key) => {
      const k = key as keyof Guards;
      return old.guards[k] === policy.guards[k] ? [] : [`${k} ${old.guards[k]} -> ${policy.guards[k]}`];
    });
    const unprotected = old.protectedNamespaces.filter((n) => !policy.protectedNamespaces.includes(n));
    const protectedNow = policy.protectedNamespaces.filter((n) => !old.protectedNamespaces.includes(n));
    if (changes.length > 0 || unprotected.length > 0 || protectedNow.length > 0) {
      this.options.log.warn(
        { guards: { from: old.guards, to: policy.guards }, protectedNamespaces: { added: protectedNow, removed: unprotected } },
        `the reload changes the guards (${[
          ...changes,
          ...(protectedNow.length > 0 ? [`protected ${protectedNow.join(', ')}`] : []),
          ...(unprotected.length > 0 ? [`no longer protected ${unprotected.join(', ')}`] : []),
        ].join('; ')}): in force from the next alert`,
      );
    }
  }

  private refuse(error: unknown): void {
    const message = error instanceof Error ? error.message : String(error);
    const problems = error instanceof PolicyError ? error.problems : [];
    // The timer reads the same broken files again and again: said once, until they change.
    if (this.lastError?.message === message) return;
    this.lastError = { at: this.options.clock.now().toISOString(), message, problems };
    this.options.log.error(
      { policy: { sha256: this.loaded.sha256, files: this.loaded.files }, problems, ...(error instanceof PolicyError ? {} : { err: error }) },
      `policy reload refused; the policy loaded at ${this.loadedAt.toISOString()} stays in force: ${message}`,
    );
  }

  private protect(policy: Policy): ReadonlySet<string> {
    return buildProtectedNamespaces(policy.protectedNamespaces, this.options.ownNamespace);
  }
}

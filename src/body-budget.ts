/**
 * The bodies drop reads and works on at once, bounded in bytes. A body of up to 1 MiB costs
 * several times its size while it is read, decoded and parsed; 64 of them at once (a flood from
 * 64 connections) would take hundreds of MB. A request whose body does not fit waits, unread,
 * until earlier ones are answered: Node stops reading its socket, so a waiting request costs
 * its headers only, and it is answered late rather than refused.
 */
export class BodyBudget {
  private used = 0;
  private readonly queue: Ticket[] = [];

  constructor(readonly maxBytes: number) {}

  /**
   * A claim on `bytes` (at most the whole budget). `granted` resolves once they are taken (at
   * once when they fit and nobody waits: first come, first served). `done()` gives them back,
   * or leaves the queue when called before the grant (then `granted` resolves too, so no caller
   * waits forever); a second call does nothing.
   */
  claim(bytes: number): { readonly granted: Promise<void>; done(): void } {
    const ticket = new Ticket(Math.min(bytes, this.maxBytes));
    this.queue.push(ticket);
    this.grant();
    return {
      granted: ticket.granted,
      done: () => {
        if (ticket.state === 'granted') this.used -= ticket.bytes;
        else if (ticket.state === 'waiting') this.queue.splice(this.queue.indexOf(ticket), 1);
        ticket.finish();
        this.grant();
      },
    };
  }

  /** Bytes taken by the bodies being worked on. */
  get inUse(): number {
    return this.used;
  }

  /** Requests waiting for their body to fit. */
  get waiting(): number {
    return this.queue.length;
  }

  private grant(): void {
    while (this.queue.length > 0 && this.used + this.queue[0]!.bytes <= this.maxBytes) {
      const ticket = this.queue.shift()!;
      this.used += ticket.bytes;
      ticket.take();
    }
  }
}

class Ticket {
  state: 'waiting' | 'granted' | 'done' = 'waiting';
  readonly granted: Promise<void>;
  private resolve!: () => void;

  constructor(readonly bytes: number) {
    this.granted = new Promise((resolve) => (this.resolve = resolve));
  }

  take(): void {
    this.state = 'granted';
    this.resolve();
  }

  finish(): void {
    this.state = 'done';
    this.resolve();
  }
}

/**
 * Restarts queued, not stacked: while one restart runs, any number of further requests collapse
 * into exactly one more restart after it, and every caller's promise settles when a restart that
 * began after its request has finished.
 */
export class RestartQueue {
  private running: Promise<void> | undefined;
  private pending: Promise<void> | undefined;
  private runs = 0;

  constructor(private readonly restart: () => Promise<void>) {}

  /** How many restarts have actually run. */
  get count(): number {
    return this.runs;
  }

  get busy(): boolean {
    return this.running !== undefined || this.pending !== undefined;
  }

  request(): Promise<void> {
    if (this.pending !== undefined) {
      return this.pending;
    }
    if (this.running === undefined) {
      this.running = this.start();
      return this.running;
    }
    const previous = this.running;
    this.pending = previous
      .catch(() => undefined)
      .then(() => {
        this.pending = undefined;
        this.running = this.start();
        return this.running;
      });
    return this.pending;
  }

  private start(): Promise<void> {
    this.runs++;
    const run = Promise.resolve().then(() => this.restart());
    const tracked: Promise<void> = run.finally(() => {
      if (this.running === tracked) {
        this.running = undefined;
      }
    });
    return tracked;
  }
}

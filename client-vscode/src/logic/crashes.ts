/**
 * When a crashed server is restarted by itself, and when it is left for the user to restart. Pure.
 *
 * vscode-languageclient's default handler gives up after five crashes in three minutes with a
 * message that has no button; ours gives up at the same point and the extension shows why, with
 * Restart Server and Show Log.
 */
export const MAX_CRASHES = 5;
export const CRASH_WINDOW_MS = 3 * 60_000;

export class CrashWindow {
  private readonly times: number[] = [];

  constructor(private readonly max = MAX_CRASHES, private readonly windowMs = CRASH_WINDOW_MS) {}

  /** Record a crash at `now`: 'restart' while under the limit, 'give-up' at it. */
  record(now: number): 'restart' | 'give-up' {
    this.times.push(now);
    while (this.times.length > 0 && now - this.times[0] > this.windowMs) {
      this.times.shift();
    }
    return this.times.length >= this.max ? 'give-up' : 'restart';
  }

  get recent(): number {
    return this.times.length;
  }

  /** A restart the user asked for starts counting afresh. */
  reset(): void {
    this.times.length = 0;
  }
}

/**
 * Approval of a policy's verification commands, tied to the SHA-256 of their exact list
 * (safety.md: treat them like tasks.json; any change asks again and shows what changed).
 *
 * The hash is over the canonical JSON of `[[lane, name, argv], ...]` in the policy's order, with
 * no whitespace and non-ASCII kept as UTF-8 — Python's
 * `json.dumps(items, separators=(",", ":"), ensure_ascii=False)` gives the same bytes.
 */
import { createHash } from 'node:crypto';

export interface PolicyCommand {
  lane: string;
  name: string;
  run: string[];
}

export interface PolicyCommands {
  folderUri: string;
  policyPath: string | null;
  commands: PolicyCommand[];
  sha256: string;
  approved: boolean;
}

export function canonicalCommands(commands: readonly PolicyCommand[]): string {
  return JSON.stringify(commands.map((c) => [c.lane, c.name, [...c.run]]));
}

export function commandsHash(commands: readonly PolicyCommand[]): string {
  return createHash('sha256').update(canonicalCommands(commands), 'utf8').digest('hex');
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Validates the reply of `route-agent.policyCommands`; argv must be a list of strings. */
export function parsePolicyCommands(value: unknown): PolicyCommands | undefined {
  if (!isRecord(value) || !Array.isArray(value.commands) || typeof value.sha256 !== 'string') {
    return undefined;
  }
  const commands: PolicyCommand[] = [];
  for (const item of value.commands) {
    if (!isRecord(item) || !Array.isArray(item.run) || !item.run.every((arg) => typeof arg === 'string')) {
      return undefined;
    }
    commands.push({ lane: String(item.lane ?? ''), name: String(item.name ?? ''), run: item.run as string[] });
  }
  return {
    folderUri: typeof value.folderUri === 'string' ? value.folderUri : '',
    policyPath: typeof value.policyPath === 'string' ? value.policyPath : null,
    commands,
    sha256: value.sha256.toLowerCase(),
    approved: value.approved === true,
  };
}

/** A shell-like rendering for display only (the commands run as argv, never through a shell). */
export function renderArgv(argv: readonly string[]): string {
  return argv.map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : JSON.stringify(arg))).join(' ');
}

export function commandLines(commands: readonly PolicyCommand[]): string[] {
  return commands.map((c) => `[${c.lane}] ${c.name}: ${renderArgv(c.run)}`);
}

export interface CommandsDiff {
  added: string[];
  removed: string[];
}

/** What changed since the commands last approved (line-wise, order-insensitive). */
export function diffCommands(previous: readonly PolicyCommand[] | undefined, current: readonly PolicyCommand[]): CommandsDiff {
  const before = new Set(commandLines(previous ?? []));
  const after = new Set(commandLines(current));
  return {
    added: [...after].filter((line) => !before.has(line)),
    removed: [...before].filter((line) => !after.has(line)),
  };
}

export interface ApprovalRecord {
  sha256: string;
  commands: PolicyCommand[];
  approvedAt: string;
}

/** The extension's own record of what the user approved, per folder: only to show what changed since.
 * The server's store (route-agent.approvePolicy) is the one that decides; nothing here is sent to it. */
export type ApprovalStore = Record<string, ApprovalRecord>;

export function approve(store: ApprovalStore, folderUri: string, commands: PolicyCommand[], now: Date): ApprovalStore {
  return { ...store, [folderUri]: { sha256: commandsHash(commands), commands, approvedAt: now.toISOString() } };
}

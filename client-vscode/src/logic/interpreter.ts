/**
 * Which Python runs the server, and whether its route-agent is usable. Pure: the caller supplies
 * the setting, the Python extension's answer and the output of `python -m route_agent --version`.
 */

export const MIN_SERVER_VERSION = '0.1.0';
export const MODULE = 'route_agent';

export type InterpreterSource = 'setting' | 'python-extension' | 'default';

export interface Interpreter {
  /** The executable; `args` come before `-m route_agent ...` (e.g. `conda run -n env python`). */
  command: string;
  args: string[];
  source: InterpreterSource;
}

/**
 * Setting first, then the Python extension's active interpreter (its `execCommand`, which may be
 * several words), then `python3` from PATH.
 */
export function chooseInterpreter(settingPath: string | undefined, pythonExtensionCommand: readonly string[] | undefined): Interpreter {
  if (settingPath && settingPath.trim() !== '') {
    return { command: settingPath.trim(), args: [], source: 'setting' };
  }
  const fromExtension = (pythonExtensionCommand ?? []).filter((part) => part.trim() !== '');
  if (fromExtension.length > 0) {
    return { command: fromExtension[0], args: fromExtension.slice(1), source: 'python-extension' };
  }
  return { command: 'python3', args: [], source: 'default' };
}

export function describeInterpreter(interpreter: Interpreter): string {
  const full = [interpreter.command, ...interpreter.args].join(' ');
  const from = {
    setting: 'from the routeAgent.python.path setting',
    'python-extension': "the Python extension's active interpreter",
    default: 'python3 from PATH',
  }[interpreter.source];
  return `${full} (${from})`;
}

/** `route-agent, version 0.1.0` (click's format) or a bare `0.1.0` -> [0, 1, 0]. */
export function parseVersion(output: string): number[] | undefined {
  const match = /(?:version\s+)?v?(\d+)\.(\d+)(?:\.(\d+))?/i.exec(output);
  if (!match) {
    return undefined;
  }
  return [Number(match[1]), Number(match[2]), Number(match[3] ?? 0)];
}

export function compareVersions(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const diff = (a[i] ?? 0) - (b[i] ?? 0);
    if (diff !== 0) {
      return diff < 0 ? -1 : 1;
    }
  }
  return 0;
}

export type ServerCheck =
  | { kind: 'ok'; version: string }
  | { kind: 'missing'; detail: string }
  | { kind: 'too-old'; version: string }
  | { kind: 'no-python'; detail: string };

export interface VersionProbe {
  /** Set when the executable could not be started at all (ENOENT, EACCES). */
  spawnError?: string;
  exitCode: number | null;
  stdout: string;
  stderr: string;
}

/** Classify the result of `<python> -m route_agent --version`. */
export function checkServer(probe: VersionProbe, minimum: string = MIN_SERVER_VERSION): ServerCheck {
  if (probe.spawnError !== undefined) {
    return { kind: 'no-python', detail: probe.spawnError };
  }
  const text = `${probe.stdout}\n${probe.stderr}`;
  if (probe.exitCode !== 0) {
    return { kind: 'missing', detail: text.trim().split('\n').slice(-1)[0] ?? '' };
  }
  const version = parseVersion(probe.stdout) ?? parseVersion(text);
  if (!version) {
    return { kind: 'missing', detail: `unexpected version output: ${text.trim().slice(0, 200)}` };
  }
  const shown = version.join('.');
  const min = parseVersion(minimum) ?? [0, 0, 0];
  return compareVersions(version, min) < 0 ? { kind: 'too-old', version: shown } : { kind: 'ok', version: shown };
}

function quoteArg(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/**
 * The exact command that installs or upgrades route-agent into `interpreter`: from a checkout when
 * one is open (editable), else from PyPI.
 */
export function installCommand(interpreter: Interpreter, checkout: string | undefined, upgrade: boolean): string {
  const python = [interpreter.command, ...interpreter.args].map(quoteArg).join(' ');
  if (checkout) {
    return `${python} -m pip install -e ${quoteArg(checkout)}`;
  }
  return `${python} -m pip install ${upgrade ? '--upgrade ' : ''}route-agent`;
}

/** The one message shown when the server cannot start, with the command that fixes it. */
export function problemMessage(check: ServerCheck, interpreter: Interpreter, checkout: string | undefined): string | undefined {
  const who = describeInterpreter(interpreter);
  switch (check.kind) {
    case 'ok':
      return undefined;
    case 'no-python':
      return `Route Agent: cannot run ${who}: ${check.detail}. Set routeAgent.python.path to a Python 3.11+ interpreter.`;
    case 'missing':
      return `Route Agent: route-agent is not installed in ${who}. Install it with: ${installCommand(interpreter, checkout, false)}`;
    case 'too-old':
      return `Route Agent: route-agent ${check.version} in ${who} is older than ${MIN_SERVER_VERSION}. Upgrade it with: ${installCommand(interpreter, checkout, true)}`;
  }
}

/** The server's command line. */
export function serverCommand(interpreter: Interpreter): { command: string; args: string[] } {
  return { command: interpreter.command, args: [...interpreter.args, '-m', MODULE, 'serve'] };
}

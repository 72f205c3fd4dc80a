/**
 * Which Python runs the server, and whether its route-agent is usable. Pure: the caller supplies
 * the setting, the Python extension's answer and the output of `python -m route_agent --version`.
 */

export const MIN_SERVER_VERSION = '0.1.0';
export const MODULE = 'route_agent';

export type InterpreterSource = 'setting' | 'python-extension' | 'default' | 'bundled';

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
    bundled: "the extension's own environment, installed from the bundled server",
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

/** What a failed spawn means, in words (Node's `spawn x ENOENT` says it in a code). */
export function spawnProblem(code: string | undefined): string {
  switch (code) {
    case 'ENOENT':
      return 'no such file';
    case 'EACCES':
      return 'permission denied (not an executable file)';
    case 'ENOTDIR':
      return 'a part of the path is not a folder';
    default:
      return code ? `it could not be started (${code})` : 'it could not be started';
  }
}

/**
 * The exact command that installs or upgrades route-agent into `interpreter`: from a checkout when
 * one is open (editable), else from a checkout the user has (route-agent is not on PyPI).
 */
export function installCommand(interpreter: Interpreter, checkout: string | undefined, upgrade: boolean): string {
  const python = [interpreter.command, ...interpreter.args].map(quoteArg).join(' ');
  if (checkout) {
    return `${python} -m pip install -e ${quoteArg(checkout)}`;
  }
  return `${python} -m pip install ${upgrade ? '--upgrade ' : ''}/path/to/route-agent`;
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
      return `Route Agent: route-agent is not installed in ${who}, and this build of the extension carries no server to install. Install it from a checkout: ${installCommand(interpreter, checkout, false)}`;
    case 'too-old':
      return `Route Agent: route-agent ${check.version} in ${who} is older than ${MIN_SERVER_VERSION}. Upgrade it with: ${installCommand(interpreter, checkout, true)}`;
  }
}

/**
 * Interpreters to offer in the picker: the workspace folders' virtual environments first, then every
 * `python3` / `python3.N` on PATH; each path once, only those `exists` says are there.
 */
export function interpreterCandidates(pathEnv: string | undefined, folders: readonly string[], exists: (file: string) => boolean,
  listDir: (dir: string) => string[], platform: NodeJS.Platform = process.platform): string[] {
  const sep = platform === 'win32' ? '\\' : '/';
  const bin = platform === 'win32' ? ['Scripts', 'python.exe'] : ['bin', 'python'];
  const found: string[] = [];
  const add = (file: string) => {
    if (!found.includes(file) && exists(file)) {
      found.push(file);
    }
  };
  for (const folder of folders) {
    for (const env of ['.venv', 'venv', 'env']) {
      add([folder, env, ...bin].join(sep));
    }
  }
  for (const dir of (pathEnv ?? '').split(platform === 'win32' ? ';' : ':').filter((d) => d !== '')) {
    let names: string[];
    try {
      names = listDir(dir);
    } catch {
      continue;
    }
    for (const name of names.filter((n) => /^python3(\.\d+)?(\.exe)?$/.test(n)).sort()) {
      add(`${dir}${sep}${name}`);
    }
  }
  return found;
}

/** The server's command line. */
export function serverCommand(interpreter: Interpreter): { command: string; args: string[] } {
  return { command: interpreter.command, args: [...interpreter.args, '-m', MODULE, 'serve'] };
}

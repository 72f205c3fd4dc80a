/**
 * The language server shipped inside the .vsix (`bundled/`: route-agent's wheel, its dependencies'
 * wheels and pip's), and the extension-owned environment it is installed into on first use. Pure:
 * the caller reads files and runs the commands this module plans.
 *
 * As ruff's extension and the Python tools extension template do, installing the .vsix is the only
 * step: when the chosen interpreter lacks route-agent, the extension makes a venv from it in its own
 * storage (`--without-pip`, so a Python without ensurepip works) and installs the bundled wheels
 * with the bundled pip, offline. A `routeAgent.python.path` that already has route-agent wins.
 */
import * as path from 'node:path';

import { Interpreter, ServerCheck } from './interpreter';

export interface BundleManifest {
  version: string;
  /** `route-agent==<version>`. */
  requirement: string;
  /** pip's own wheel file name; it runs from the wheel (`python pip.whl/pip install ...`). */
  pip: string;
  wheels: string[];
  builtWith?: { python?: string; platform?: string };
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}

/** bundled/manifest.json, or undefined when it is missing or malformed (no bundle in this build). */
export function parseManifest(text: string | undefined): BundleManifest | undefined {
  if (text === undefined) {
    return undefined;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) {
    return undefined;
  }
  const v = value as Record<string, unknown>;
  if (typeof v.version !== 'string' || typeof v.requirement !== 'string' || typeof v.pip !== 'string' || !isStringArray(v.wheels)) {
    return undefined;
  }
  if (!v.wheels.includes(v.pip)) {
    return undefined;
  }
  const built = typeof v.builtWith === 'object' && v.builtWith !== null ? (v.builtWith as Record<string, unknown>) : undefined;
  return {
    version: v.version,
    requirement: v.requirement,
    pip: v.pip,
    wheels: v.wheels,
    builtWith: built ? { python: typeof built.python === 'string' ? built.python : undefined, platform: typeof built.platform === 'string' ? built.platform : undefined } : undefined,
  };
}

export type ServerChoice =
  | { kind: 'use'; interpreter: Interpreter }
  | { kind: 'install'; base: Interpreter }
  | { kind: 'problem' };

/**
 * What to run, from the check of the chosen interpreter: it when its route-agent is usable; the
 * bundle installed into the extension's environment (made from that interpreter) when route-agent
 * is missing or too old there and this build carries a bundle; else the problem message.
 */
export function chooseServer(check: ServerCheck, interpreter: Interpreter, bundle: BundleManifest | undefined): ServerChoice {
  if (check.kind === 'ok') {
    return { kind: 'use', interpreter };
  }
  if ((check.kind === 'missing' || check.kind === 'too-old') && bundle !== undefined) {
    return { kind: 'install', base: interpreter };
  }
  return { kind: 'problem' };
}

export function venvPython(venvDir: string, platform: NodeJS.Platform = process.platform): string {
  return platform === 'win32' ? path.join(venvDir, 'Scripts', 'python.exe') : path.join(venvDir, 'bin', 'python');
}

export function bundledInterpreter(venvDir: string, platform: NodeJS.Platform = process.platform): Interpreter {
  return { command: venvPython(venvDir, platform), args: [], source: 'bundled' };
}

export interface Step {
  title: string;
  command: string;
  args: string[];
}

/**
 * The commands that make the environment: a venv from `base`, then the bundled wheels installed by
 * the bundled pip. `offline: false` lets pip also ask its configured index, for a compiled wheel the
 * bundle lacks for this Python (the bundle's compiled wheels fit the Python it was built with).
 */
export function installSteps(bundle: BundleManifest, bundleDir: string, venvDir: string, base: Interpreter, offline: boolean,
  platform: NodeJS.Platform = process.platform): Step[] {
  const wheels = path.join(bundleDir, 'wheels');
  const pip = path.join(wheels, bundle.pip, 'pip');
  return [
    { title: 'Creating the environment', command: base.command, args: [...base.args, '-m', 'venv', '--without-pip', venvDir] },
    {
      title: `Installing route-agent ${bundle.version}`,
      command: venvPython(venvDir, platform),
      args: [pip, 'install', '--disable-pip-version-check', '--no-input', '--no-warn-script-location', ...(offline ? ['--no-index'] : []),
        '--find-links', wheels, bundle.requirement],
    },
  ];
}

export interface Stamp {
  version: string;
  base: string;
}

/** Written into the environment after a good install: which bundle, made from which interpreter. */
export function stampFor(bundle: BundleManifest, base: Interpreter): Stamp {
  return { version: bundle.version, base: [base.command, ...base.args].join(' ') };
}

/** Whether the environment holds this bundle, made from this interpreter (else it is made again). */
export function stampMatches(text: string | undefined, bundle: BundleManifest, base: Interpreter): boolean {
  if (text === undefined) {
    return false;
  }
  try {
    const stamp = JSON.parse(text) as Partial<Stamp>;
    const want = stampFor(bundle, base);
    return stamp.version === want.version && stamp.base === want.base;
  } catch {
    return false;
  }
}

/** The last lines of a failed step's output, for the message and the log. */
export function failureSummary(step: Step, output: string): string {
  const lines = output.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  const error = [...lines].reverse().find((l) => /^ERROR:|Error|error:/.test(l)) ?? lines[lines.length - 1] ?? 'no output';
  return `${step.title} failed: ${error}`;
}

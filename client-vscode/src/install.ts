/**
 * Installs the bundled language server into the extension's own environment on first use, with a
 * progress notification (see logic/bundle.ts for what and why).
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';

import { BundleManifest, bundledInterpreter, failureSummary, installSteps, parseManifest, stampFor, stampMatches, Step } from './logic/bundle';
import { describeInterpreter, Interpreter } from './logic/interpreter';

const STEP_TIMEOUT_MS = 5 * 60_000;
const STAMP = 'route-agent-bundle.json';

export interface Bundle {
  manifest: BundleManifest;
  dir: string;
  venv: string;
}

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** The server this build of the extension carries, or undefined (a build without `bundled/`). */
export function findBundle(context: vscode.ExtensionContext): Bundle | undefined {
  const dir = context.asAbsolutePath('bundled');
  const manifest = parseManifest(readText(path.join(dir, 'manifest.json')));
  if (!manifest) {
    return undefined;
  }
  return { manifest, dir, venv: path.join(context.globalStorageUri.fsPath, 'server-env') };
}

function run(step: Step, log: vscode.LogOutputChannel): Promise<{ ok: boolean; output: string }> {
  log.info(`${step.title}: ${[step.command, ...step.args].join(' ')}`);
  return new Promise((resolve) => {
    execFile(step.command, step.args, { timeout: STEP_TIMEOUT_MS, windowsHide: true, maxBuffer: 16 * 1024 * 1024,
      env: { ...process.env, PIP_DISABLE_PIP_VERSION_CHECK: '1', PYTHONNOUSERSITE: '1' } },
    (error, stdout, stderr) => {
      const output = `${String(stdout)}\n${String(stderr)}`.trim();
      if (output) {
        log.debug(output);
      }
      resolve({ ok: !error, output: error && !output ? String(error.message) : output });
    });
  });
}

/**
 * The bundled server's interpreter, installing it first when the environment is missing, from
 * another bundle or from another base interpreter. Throws with what went wrong.
 */
export async function ensureBundledServer(bundle: Bundle, base: Interpreter, log: vscode.LogOutputChannel): Promise<Interpreter> {
  const stampFile = path.join(bundle.venv, STAMP);
  const interpreter = bundledInterpreter(bundle.venv);
  if (stampMatches(readText(stampFile), bundle.manifest, base) && fs.existsSync(interpreter.command)) {
    return interpreter;
  }
  log.info(`Installing the bundled route-agent ${bundle.manifest.version} into ${bundle.venv}, from ${describeInterpreter(base)}`);
  return vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: 'Route Agent: installing the language server', cancellable: false },
    async (progress) => {
      fs.rmSync(bundle.venv, { recursive: true, force: true });
      fs.mkdirSync(path.dirname(bundle.venv), { recursive: true });
      const [create, install] = installSteps(bundle.manifest, bundle.dir, bundle.venv, base, true);
      progress.report({ message: `${create.title}…` });
      const made = await run(create, log);
      if (!made.ok) {
        throw new Error(failureSummary(create, made.output));
      }
      progress.report({ message: `${install.title} (offline, from the extension)…` });
      let installed = await run(install, log);
      if (!installed.ok) {
        // The bundle's compiled wheels fit the Python it was built with; let pip's index supply
        // the ones this Python needs.
        const online = installSteps(bundle.manifest, bundle.dir, bundle.venv, base, false)[1];
        log.warn(`${failureSummary(install, installed.output)}; trying again with pip's index for what the bundle lacks`);
        progress.report({ message: `${online.title} (with pip's index)…` });
        installed = await run(online, log);
        if (!installed.ok) {
          fs.rmSync(bundle.venv, { recursive: true, force: true });
          throw new Error(failureSummary(online, installed.output));
        }
      }
      fs.writeFileSync(stampFile, JSON.stringify(stampFor(bundle.manifest, base)));
      log.info(`Installed route-agent ${bundle.manifest.version} in ${bundle.venv}`);
      return interpreter;
    },
  );
}

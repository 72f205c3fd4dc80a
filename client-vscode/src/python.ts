/**
 * The Python extension's active interpreter, when that extension is installed. Read through its
 * public API without a compile-time dependency: `environments` (current API) first, then the
 * older `settings.getExecutionDetails`.
 */
import * as vscode from 'vscode';

interface ResolvedEnvironment {
  executable?: { uri?: vscode.Uri; sysPrefix?: string };
}

interface PythonExtensionApi {
  environments?: {
    getActiveEnvironmentPath(resource?: vscode.Uri): { path: string } | undefined;
    resolveEnvironment(path: { path: string } | string): Promise<ResolvedEnvironment | undefined>;
    onDidChangeActiveEnvironmentPath?: vscode.Event<unknown>;
  };
  settings?: {
    getExecutionDetails?(resource?: vscode.Uri): { execCommand: string[] | undefined };
    onDidChangeExecutionDetails?: vscode.Event<unknown>;
  };
}

const PYTHON_EXTENSION_ID = 'ms-python.python';

async function api(): Promise<PythonExtensionApi | undefined> {
  const extension = vscode.extensions.getExtension<PythonExtensionApi>(PYTHON_EXTENSION_ID);
  if (!extension) {
    return undefined;
  }
  try {
    return extension.isActive ? extension.exports : await extension.activate();
  } catch {
    return undefined;
  }
}

/** The active interpreter's command for `resource`, or undefined (no extension, no interpreter). */
export async function activeInterpreter(resource: vscode.Uri | undefined, log: vscode.LogOutputChannel): Promise<string[] | undefined> {
  const python = await api();
  if (!python) {
    return undefined;
  }
  try {
    const environments = python.environments;
    if (environments) {
      const active = environments.getActiveEnvironmentPath(resource);
      if (active) {
        const resolved = await environments.resolveEnvironment(active);
        const executable = resolved?.executable?.uri?.fsPath;
        if (executable) {
          return [executable];
        }
      }
    }
    const details = python.settings?.getExecutionDetails?.(resource);
    if (details?.execCommand && details.execCommand.length > 0) {
      return details.execCommand;
    }
  } catch (error) {
    log.warn(`The Python extension did not give an interpreter: ${String(error)}`);
  }
  return undefined;
}

/** Fires when the user picks another interpreter in the Python extension. */
export async function onInterpreterChanged(listener: () => void): Promise<vscode.Disposable | undefined> {
  const python = await api();
  const event = python?.environments?.onDidChangeActiveEnvironmentPath ?? python?.settings?.onDidChangeExecutionDetails;
  return event ? event(() => listener()) : undefined;
}

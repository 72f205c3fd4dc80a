// Puts the language server into the .vsix: route-agent's wheel, the wheels of everything it needs at
// run time, and pip's own wheel (which installs them without an internet connection, into a venv made
// `--without-pip`, so a Python lacking ensurepip works too). Run by `npm run package`.
//
// The Python that builds the wheels is ROUTE_AGENT_BUNDLE_PYTHON, else the repository's .venv, else
// python3. Most dependencies are pure Python (`py3-none-any`); pydantic-core and PyYAML are compiled,
// so their wheels fit this Python version and platform; the extension asks pip's index only for
// wheels the bundle lacks for the user's Python (bundled/manifest.json lists what is here).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const clientDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const repoRoot = path.resolve(clientDir, '..');
const out = path.join(clientDir, 'bundled');
const wheels = path.join(out, 'wheels');

function python() {
  if (process.env.ROUTE_AGENT_BUNDLE_PYTHON) {
    return process.env.ROUTE_AGENT_BUNDLE_PYTHON;
  }
  const venv = path.join(repoRoot, '.venv', 'bin', 'python');
  return fs.existsSync(venv) ? venv : 'python3';
}

const py = python();
const version = /^version\s*=\s*"([^"]+)"/m.exec(fs.readFileSync(path.join(repoRoot, 'pyproject.toml'), 'utf8'))?.[1];
if (!version) {
  throw new Error('no version in pyproject.toml');
}
fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(wheels, { recursive: true });
// A fresh copy of what the wheel is built from: setuptools' build/ would otherwise carry stale modules.
const build = fs.mkdtempSync(path.join(os.tmpdir(), 'route-agent-bundle-'));
for (const entry of ['pyproject.toml', 'README.md', 'LICENSE', 'server']) {
  if (fs.existsSync(path.join(repoRoot, entry))) {
    fs.cpSync(path.join(repoRoot, entry), path.join(build, entry), {
      recursive: true,
      filter: (src) => !src.includes('__pycache__') && !src.endsWith('.egg-info'),
    });
  }
}
execFileSync(py, ['-m', 'pip', 'wheel', '--quiet', '--disable-pip-version-check', '--wheel-dir', wheels, build, 'pip'], { stdio: 'inherit' });
fs.rmSync(build, { recursive: true, force: true });

const names = fs.readdirSync(wheels).filter((n) => n.endsWith('.whl')).sort();
const pip = names.find((n) => /^pip-[^-]+-py3-none-any\.whl$/.test(n));
const server = names.find((n) => n.startsWith(`route_agent-${version}-`));
if (!pip || !server) {
  throw new Error(`the bundle lacks ${pip ? 'route-agent' : 'pip'}: ${names.join(', ')}`);
}
const tag = execFileSync(py, ['-c', 'import sys, sysconfig; print(f"cp{sys.version_info[0]}{sys.version_info[1]} {sysconfig.get_platform()}")']).toString().trim().split(' ');
const manifest = {
  version,
  requirement: `route-agent==${version}`,
  pip,
  wheels: names,
  builtWith: { python: tag[0], platform: tag[1] },
};
fs.writeFileSync(path.join(out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
const size = names.reduce((sum, n) => sum + fs.statSync(path.join(wheels, n)).size, 0);
console.log(`bundled ${names.length} wheels (${(size / 1e6).toFixed(1)} MB) for ${tag.join(' ')} into ${path.relative(clientDir, out)}`);

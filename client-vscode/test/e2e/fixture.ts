/**
 * The example repository the real-editor test opens: a small identity service whose pending change
 * adds JWT verification to `services/identity/tokens.py` (auth code: always the strong lane), a
 * repository policy whose lanes are models on the test's OpenAI-compatible server, and the replies
 * those models give.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const TOKENS_PATH = 'services/identity/tokens.py';
export const NAMES_PATH = 'services/identity/names.py';
export const MODELS = { fast: 'e2e-fast', strong: 'e2e-strong', verifier: 'e2e-verifier' } as const;

const TOKENS_BASE = `"""Access tokens for the identity service."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

SECRET = b"dev-only-secret"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def issue_token(subject: str, ttl_s: int = 3600, now: float | None = None) -> str:
    """An HS256 JWT for \`subject\`, valid for \`ttl_s\` seconds."""
    issued = int(time.time() if now is None else now)
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = _b64(json.dumps({"sub": subject, "iat": issued, "exp": issued + ttl_s}).encode())
    signature = hmac.new(SECRET, f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{_b64(signature)}"
`;

/** The pending auth change: JWT verification (signature and expiry). */
export const TOKENS_PENDING = `${TOKENS_BASE}

class InvalidToken(Exception):
    """The token is malformed, forged or expired."""


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify_token(token: str, now: float | None = None) -> dict[str, object]:
    """The claims of a valid HS256 JWT; raises InvalidToken otherwise."""
    try:
        header, claims, signature = token.split(".")
    except ValueError:
        raise InvalidToken("not a JWT") from None
    expected = hmac.new(SECRET, f"{header}.{claims}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, _unb64(signature)):
        raise InvalidToken("bad signature")
    payload = json.loads(_unb64(claims))
    if payload.get("exp", 0) < (time.time() if now is None else now):
        raise InvalidToken("expired")
    return payload
`;

export const NAMES_BASE = `"""How people's names are shown."""


def display_name(first: str, last: str) -> str:
    """'Ada Lovelace' from its parts, without stray whitespace."""
    return f"{first} {last}"
`;

/** What the user types into names.py in the editor (a low-risk pending change: the fast lane). */
export const NAMES_USER_EDIT_LINE = '# Shown on profile pages and in e-mails.';
export const NAMES_EDITED = `"""How people's names are shown."""
${NAMES_USER_EDIT_LINE}


def display_name(first: str, last: str) -> str:
    """'Ada Lovelace' from its parts, without stray whitespace."""
    return f"{first} {last}"
`;

/** The fast lane's patch: strips one part only, so the test still fails. */
export const NAMES_FAST = NAMES_EDITED.replace('return f"{first} {last}"', 'return f"{first.strip()} {last}"');
/** The strong lane's patch: correct. This is the file's expected content at the end. */
export const NAMES_STRONG = NAMES_EDITED.replace('return f"{first} {last}"', 'return f"{first.strip()} {last.strip()}"');

const TEST_NAMES = `from services.identity.names import display_name


def test_display_name_strips_whitespace() -> None:
    assert display_name(" Ada ", "Lovelace ") == "Ada Lovelace"
`;

const TEST_TOKENS = `from services.identity.tokens import issue_token


def test_issue_token_has_three_parts() -> None:
    assert issue_token("ada", now=0).count(".") == 2
`;

/** The verification commands the policy below declares (what the approval dialog must show). */
export const TEST_ARGV = ['python', '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '--junitxml=.e2e-report.xml', 'tests'];
export const POLICY_COMMANDS = [
  { lane: 'fast', name: 'tests', run: TEST_ARGV },
  { lane: 'strong', name: 'tests', run: TEST_ARGV },
];

/**
 * The repository policy. The lanes answer with one patch each (`executor: oneshot`), except the fast
 * lane when `fastExecutor` is `builtin`: then it is the built-in agent loop, one shell command per reply.
 * It lowers no protection of the default policy (prices, attempts, the sandbox): a repository's policy
 * cannot, and the editor would list each such setting as ignored. A fast run in the editor stops after
 * its attempt and offers the escalation by itself.
 */
export function policyYaml(baseUrl: string, fastExecutor: 'oneshot' | 'builtin' = 'oneshot'): string {
  const model = (name: string, price: string, executor = 'oneshot') =>
    `    provider: openai-compatible\n    model: ${name}\n    base_url: ${baseUrl}\n    max_context_tokens: 32000\n    price_per_mtok: ${price}\n    executor: ${executor}\n`;
  return `# route-agent policy for the editor test: every model is on the test's local server.
version: 1
models:
  fast:
${model(MODELS.fast, '{input: 0.8, output: 4.0}', fastExecutor)}  strong:
${model(MODELS.strong, '{input: 3.0, output: 15.0}')}  verifier:
${model(MODELS.verifier, '{input: 0.4, output: 1.6}')}verification:
  fast:
    - {name: tests, run: [python, -m, pytest, -q, -p, no:cacheprovider, --junitxml=.e2e-report.xml, tests], parser: junit, report: .e2e-report.xml, kind: tests, timeout_s: 120}
  strong:
    - {name: tests, run: [python, -m, pytest, -q, -p, no:cacheprovider, --junitxml=.e2e-report.xml, tests], parser: junit, report: .e2e-report.xml, kind: tests, timeout_s: 120}
`;
}

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', ['-c', 'core.hooksPath=/dev/null', '-c', 'commit.gpgsign=false', ...args], {
    cwd,
    env: { ...process.env, GIT_AUTHOR_NAME: 'e2e', GIT_AUTHOR_EMAIL: 'e2e@example.invalid', GIT_COMMITTER_NAME: 'e2e', GIT_COMMITTER_EMAIL: 'e2e@example.invalid' },
  }).toString();
}

function write(root: string, rel: string, text: string): void {
  const target = path.join(root, rel);
  fs.mkdirSync(path.dirname(target), { recursive: true });
  fs.writeFileSync(target, text);
}

export const POLICY_PATH = '.route-agent/policy.yaml';

/** The failing test the user adds before asking the agent for a fix: names typed in lower case. */
export const TEST_NAMES_CAPITALISED = `${TEST_NAMES}

def test_display_name_capitalises_each_part() -> None:
    assert display_name("ada", "lovelace") == "Ada Lovelace"
`;

/** One reply of the built-in agent's contract: a thought and exactly one fenced bash block. */
export function bashReply(thought: string, command: string): string {
  return `${thought}\n\n\`\`\`bash\n${command}\n\`\`\`\n`;
}

/** The test command the agent runs (with the repository's .venv first on PATH, as the checks do). */
export const AGENT_TEST_COMMAND = 'python -m pytest -q -p no:cacheprovider tests/test_names.py';
/** The agent's edit: one command that rewrites names.py in the worktree. */
const AGENT_EDIT = [
  "python3 - <<'EOF'",
  'import pathlib',
  `p = pathlib.Path('${NAMES_PATH}')`,
  "p.write_text(p.read_text().replace('{first.strip()} {last.strip()}', '{first.strip().title()} {last.strip().title()}'))",
  'EOF',
].join('\n');
/** A scripted agent session: look, run the failing test, edit, run it again, submit. */
export const AGENT_REPLIES = [
  bashReply('Let me look around.', 'ls services/identity tests'),
  bashReply('Run the failing test.', AGENT_TEST_COMMAND),
  bashReply('Each part must be capitalised.', AGENT_EDIT),
  bashReply('Run it again.', AGENT_TEST_COMMAND),
  bashReply('Done.', 'submit'),
];

/** Creates the repository at `root`: base commit, then the pending (uncommitted) auth change. */
export function makeRepository(root: string, baseUrl: string): void {
  fs.mkdirSync(root, { recursive: true });
  git(root, 'init', '-q', '-b', 'main');
  write(root, 'README.md', '# identity service\n');
  write(root, 'services/__init__.py', '');
  write(root, 'services/identity/__init__.py', '');
  write(root, TOKENS_PATH, TOKENS_BASE);
  write(root, NAMES_PATH, NAMES_BASE);
  write(root, 'tests/__init__.py', '');
  write(root, 'tests/test_names.py', TEST_NAMES);
  write(root, 'tests/test_tokens.py', TEST_TOKENS);
  write(root, POLICY_PATH, policyYaml(baseUrl));
  write(root, '.gitignore', '__pycache__/\n.pytest_cache/\n.e2e-report.xml\n');
  git(root, 'add', '-A');
  git(root, 'commit', '-q', '-m', 'identity service');
  write(root, TOKENS_PATH, TOKENS_PENDING);
}

/** The user commits the auth change (as they would after review), leaving no pending change. */
export function commitPending(root: string): void {
  git(root, 'add', '-A');
  git(root, 'commit', '-q', '-m', 'verify JWTs');
}

/** The user switches the fast lane to the built-in agent and commits it with the applied fix. */
export function useBuiltinAgentForFastLane(root: string, baseUrl: string): void {
  write(root, POLICY_PATH, policyYaml(baseUrl, 'builtin'));
  git(root, 'add', '-A');
  git(root, 'commit', '-q', '-m', 'names: strip both parts; fast lane: the built-in agent');
}

/** The user adds a failing test (from a terminal, not the editor): the agent's task. */
export function addFailingTest(root: string): void {
  write(root, 'tests/test_names.py', TEST_NAMES_CAPITALISED);
}

/** A unified diff from `before` to `after` for `rel`, as a model would answer it. */
export function unifiedDiff(rel: string, before: string, after: string, scratch: string): string {
  const a = path.join(scratch, 'diff-a');
  const b = path.join(scratch, 'diff-b');
  fs.writeFileSync(a, before);
  fs.writeFileSync(b, after);
  let out = '';
  try {
    execFileSync('git', ['diff', '--no-index', '--no-ext-diff', '-U3', a, b]);
  } catch (error) {
    // exit 1: the files differ, which is what we want
    out = String((error as { stdout?: Buffer }).stdout ?? '');
  }
  const body = out.split('\n');
  const start = body.findIndex((line) => line.startsWith('@@'));
  if (start < 0) {
    throw new Error('no difference to make a diff of');
  }
  return [`--- a/${rel}`, `+++ b/${rel}`, ...body.slice(start)].join('\n');
}

export function patchReply(diff: string): string {
  return `Here is the fix.\n\n\`\`\`diff\n${diff.trimEnd()}\n\`\`\`\n`;
}

export const VERIFIER_PASS = JSON.stringify({ verdict: 'pass', confidence: 0.92, summary: 'The change does what the task asks.', concerns: [] });

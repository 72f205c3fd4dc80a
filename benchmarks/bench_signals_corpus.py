"""Precision and recall of the change detectors (schema, auth, CI, new code) on real commits.

The corpus is `benchmarks/data/signals_corpus.jsonl`: commit ids of a public repository and labels
written by the rules in docs/signals-corpus.md (no code is shipped). The repository itself is read
from a local clone:

    git clone https://github.com/encode/django-rest-framework /tmp/drf
    .venv/bin/python benchmarks/bench_signals_corpus.py --repo /tmp/drf

`--relabel` re-runs the independent labeller (the proposal step of docs/signals-corpus.md) and
prints where it disagrees with the shipped labels; `--select N` draws a new stratified sample.
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import re
import subprocess
import sys
from pathlib import Path

from route_agent.policy import PolicyCache
from route_agent.signals import PathMatcher, compute_signals
from route_agent.signals.diffparse import change_set_from_diff

CORPUS = Path(__file__).parent / "data" / "signals_corpus.jsonl"
DETECTORS = ("schema", "auth", "ci", "new_code")
MAX_CHANGED_LINES = 2000


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, errors="replace", check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def parent(repo: Path, commit: str) -> str:
    return git(repo, "rev-parse", f"{commit}^").strip()


def detect(repo: Path, commit: str, matcher: PathMatcher) -> dict[str, object]:
    diff = git(repo, "diff", "--no-renames", "--no-color", "-U0", parent(repo, commit), commit)
    sig = compute_signals(change_set_from_diff(diff), "", matcher)
    return {"schema": sig.has_schema_change, "auth": sig.has_auth_code, "ci": "ci_config" in sig.raised,
            "new_code": sig.needs_new_code, "files": sig.files_touched}


# ---- the independent labeller (proposal step; hand review wins) -------------------------------

_TEST = re.compile(r"(^|/)(tests?/|test_[^/]*\.py$|[^/]*_test\.py$|conftest\.py$)")
_DOCS = re.compile(r"(^|/)docs?/|\.(md|rst|txt)$|(^|/)(LICENSE|CHANGELOG)")
_MIGRATION = re.compile(r"(^|/)(\w*migrations|alembic/versions|db/migrate)/")
_SCHEMA_FILE = re.compile(r"\.(sql|proto|graphql|gql|prisma)$|(^|/)(openapi|swagger)\.(ya?ml|json)$")
_AUTH_MODULE = re.compile(r"(^|/)(authentication|permissions|authorization|auth|csrf|backends|tokens)\.py$"
                          r"|(^|/)(authtoken|tokenauth|auth)/|(^|/)\w*(oauth|oidc|openid|saml|sso)\w*/")
_ASSET = re.compile(r"\.(html?|css|scss|less|svg|png|jpg|gif|ico|po|mo)$")
_CI = re.compile(r"^(\.github/(workflows|actions)/|\.github/dependabot\.ya?ml$|tox\.ini$|noxfile\.py$|\.travis\.yml$|Jenkinsfile"
                 r"|\.gitlab-ci\.yml$|azure-pipelines|\.circleci/|appveyor\.yml$|\.cirrus\.yml$)")
_MAKE_CHECK = re.compile(r"\b(pytest|tox|flake8|ruff|mypy|coverage|isort|lint|test)\b")
_AUTH_WORDS = re.compile(r"authenticat|permission|password|csrf|\blogin|\blogout|credential|token|has_perm|is_staff|"
                         r"is_superuser|hmac|signer|signing", re.IGNORECASE)
_SOURCE = (".py", ".js", ".ts", ".go", ".rb", ".rs", ".java", ".c", ".h", ".sh")
_FIELD = re.compile(r"^(\w*Field|ForeignKey|OneToOneField|ManyToManyField)$")


def _show(repo: Path, rev: str, path: str) -> str | None:
    try:
        return git(repo, "show", f"{rev}:{path}")
    except RuntimeError:
        return None


def _py_names(text: str | None) -> set[str] | None:
    if text is None:
        return set()
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    return {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}


def _js_names(text: str | None) -> set[str]:
    found = re.findall(r"\bfunction\s+(\w+)|\b(\w+)\s*[:=]\s*function\b|\bclass\s+(\w+)"
                       r"|^\s*(?:export\s+)?(?:const|let|var)\s+(\w+)\s*=\s*\([^)]*\)\s*=>", text or "", re.MULTILINE)
    return {next(x for x in groups if x) for groups in found}


def _model_fields(text: str | None) -> set[str]:
    if not text:
        return set()
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return set()
    out: set[str] = set()
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        for stmt in cls.body:
            if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Call):
                func = stmt.value.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if _FIELD.match(name) and isinstance(func, ast.Attribute) and getattr(func.value, "id", "") == "models":
                    out.add(f"{cls.name}.{ast.dump(stmt)}")
    return out


def _model_shape(text: str | None) -> set[str]:
    """Model fields (by class, name and value, not position) and the Meta options that shape tables."""
    shape = _model_fields(text)
    if not text:
        return shape
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return shape
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        bases = {ast.unparse(b) for b in cls.bases}
        if "models.Model" in bases:
            shape.add(f"model {cls.name}")
        if cls.name == "Meta":
            for stmt in cls.body:
                if isinstance(stmt, ast.Assign) and any(getattr(t, "id", "") in ("db_table", "swappable", "unique_together",
                                                                                  "index_together", "managed") for t in stmt.targets):
                    shape.add(ast.dump(stmt))
    return shape


def _docstring_lines(text: str | None) -> set[int]:
    if not text:
        return set()
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return set()
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return lines


def propose(repo: Path, commit: str) -> dict[str, object]:
    base = parent(repo, commit)
    status = [line.split("\t") for line in git(repo, "diff", "--name-status", "-M", base, commit).splitlines() if line]
    labels: dict[str, object] = {"schema": False, "auth": False, "ci": False, "new_code": False, "files": len(status)}
    hints: list[str] = []
    for row in status:
        kind, path, old = row[0][0], row[-1], row[1]
        is_make = path.rpartition("/")[2] == "Makefile"
        if _CI.search(path) or (is_make and _MAKE_CHECK.search(git(repo, "diff", "-U0", base, commit, "--", path))):
            labels["ci"] = True
        prod = not _TEST.search(path) and not _DOCS.search(path)
        old_text = None if kind == "A" else _show(repo, base, old)
        new_text = None if kind == "D" else _show(repo, commit, path)
        if prod and (_MIGRATION.search(path) or _SCHEMA_FILE.search(path)
                     or (path.endswith(".py") and _model_shape(old_text) != _model_shape(new_text))):
            labels["schema"] = True
        if prod and _AUTH_MODULE.search(path) and not _ASSET.search(path):
            labels["auth"] = True
        elif prod and path.endswith(".py"):
            diff = git(repo, "diff", "-U0", base, commit, "--", path) if kind != "R" else ""
            skip_new, skip_old = _docstring_lines(new_text), _docstring_lines(old_text)
            new_no = old_no = 0
            for line in diff.splitlines():
                m = re.match(r"@@ -(\d+)(?:,\d+)? \+(\d+)", line)
                if m:
                    old_no, new_no = int(m.group(1)), int(m.group(2))
                    continue
                if line.startswith(("+++", "---")):
                    continue
                if line.startswith("+"):
                    if new_no not in skip_new and not line[1:].lstrip().startswith("#") and _AUTH_WORDS.search(line):
                        hints.append(f"{path}: {line[:100]}")
                    new_no += 1
                elif line.startswith("-"):
                    if old_no not in skip_old and not line[1:].lstrip().startswith("#") and _AUTH_WORDS.search(line):
                        hints.append(f"{path}: {line[:100]}")
                    old_no += 1
        if _DOCS.search(path) or not path.endswith(_SOURCE) or kind == "D":
            continue
        if kind == "A":
            if new_text and new_text.strip():
                labels["new_code"] = True
        elif path.endswith(".py"):
            before, after = _py_names(old_text), _py_names(new_text)
            if before is not None and after is not None and after - before:
                labels["new_code"] = True
        elif _js_names(new_text) - _js_names(old_text):
            labels["new_code"] = True
    if hints:
        labels["auth_hints"] = hints[:5]
    return labels


# ---- sampling -----------------------------------------------------------------------------------

def select(repo: Path, count: int, seed: int = 16) -> list[str]:
    def commits(*paths: str) -> list[str]:
        return git(repo, "log", "--no-merges", "--format=%H", "--", *paths).split()

    rng = random.Random(seed)
    strata = [
        (commits("*migrations*"), 20),
        (commits("*authentication*", "*permission*", "*authtoken*", "*auth*.py", "*token*.py", "*validators*.py"), 30),
        (commits("tox.ini", ".github", ".travis.yml", "Makefile", "noxfile.py"), 25),
        (commits("*views*.py", "*request*.py", "*models.py"), 15),
        (commits(), count),
    ]
    chosen: list[str] = []
    for pool, want in strata:
        rng.shuffle(pool)
        taken = 0
        for commit in pool:
            if len(chosen) >= count or taken >= want:
                break
            if commit in chosen:
                continue
            stat = git(repo, "diff", "--shortstat", parent(repo, commit), commit)
            changed = sum(int(n) for n in re.findall(r"(\d+) (?:insertion|deletion)", stat))
            if changed > MAX_CHANGED_LINES or parent(repo, commit) == commit:
                continue
            chosen.append(commit)
            taken += 1
    return chosen


# ---- scoring ------------------------------------------------------------------------------------

def load(path: Path) -> list[dict[str, object]]:
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            sys.exit(f"{path}:{number}: not a JSON line ({exc.msg}); fix or remove that line")
    return rows


def _report(title: str, counts: dict[str, list[int]], files_exact: int, replayed: int) -> None:
    print(f"{title}: {replayed} commits")
    print(f"  {'detector':<10}{'positives':>10}{'precision':>11}{'recall':>8}")
    for name, (tp, fp, fn) in counts.items():
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 1.0
        print(f"  {name:<10}{tp + fn:>10}{precision:>11.2f}{recall:>8.2f}")
    print(f"  files touched exact: {files_exact}/{replayed} ({files_exact / max(replayed, 1):.2f})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", action="append", required=True, metavar="[OWNER/NAME=]PATH",
                        help="a full local clone of a corpus repository (repeat for each; a bare PATH serves every row)")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--relabel", action="store_true", help="print where the labeller disagrees with the labels")
    parser.add_argument("--select", type=int, default=0, help="draw N commits and print proposed labels as JSONL")
    parser.add_argument("--name", default="encode/django-rest-framework", help="owner/name recorded with --select")
    parser.add_argument("--verbose", action="store_true", help="print every miss and false alarm")
    args = parser.parse_args()
    clones: dict[str, Path] = {}
    for item in args.repo:
        name, _, path = item.rpartition("=")
        clone = Path(path)
        if not (clone / ".git").exists() and not (clone / "HEAD").exists():
            sys.exit(f"{clone}: not a git repository; clone it first (see the docstring of this script)")
        clones[name or "*"] = clone
    if args.select:
        clone = clones.get(args.name) or clones.get("*") or next(iter(clones.values()))
        for commit in select(clone, args.select):
            print(json.dumps({"repo": args.name, "commit": commit, "labels": propose(clone, commit)}))
        return 0
    matcher = PathMatcher(PolicyCache().load().policy)
    rows = load(args.corpus)
    per_repo: dict[str, tuple[dict[str, list[int]], list[int]]] = {}
    total = ({name: [0, 0, 0] for name in DETECTORS}, [0, 0])  # tp, fp, fn per detector; files exact, replayed
    for row in rows:
        repo_name, commit, labels = str(row["repo"]), str(row["commit"]), row["labels"]
        assert isinstance(labels, dict)
        clone = clones.get(repo_name) or clones.get("*")
        if clone is None:
            print(f"skipped {repo_name} {commit[:10]}: no clone given (--repo {repo_name}=PATH)")
            continue
        try:
            got = detect(clone, commit, matcher)
        except RuntimeError as exc:
            print(f"skipped {repo_name} {commit[:10]}: {exc}")
            continue
        if args.relabel:
            proposal = propose(clone, commit)
            diff = {k: (labels[k], proposal[k]) for k in (*DETECTORS, "files") if labels[k] != proposal[k]}
            if diff:
                print(f"labeller disagrees {commit[:10]}: {diff}")
        mine = per_repo.setdefault(repo_name, ({name: [0, 0, 0] for name in DETECTORS}, [0, 0]))
        for counts, tally in (mine, total):
            tally[0] += got["files"] == labels["files"]
            tally[1] += 1
            for name in DETECTORS:
                want, have = bool(labels[name]), bool(got[name])
                counts[name][0] += want and have
                counts[name][1] += have and not want
                counts[name][2] += want and not have
        for name in DETECTORS:
            if args.verbose and bool(labels[name]) != bool(got[name]):
                print(f"{'miss' if labels[name] else 'false alarm'} {name} {repo_name} {commit[:10]} {row.get('note', '')}")
    for repo_name, (counts, tally) in per_repo.items():
        _report(repo_name, counts, tally[0], tally[1])
    if len(per_repo) > 1:
        _report("all", total[0], total[1][0], total[1][1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Pre-task change sets (named files, no lines), gold change sets, and no leak from the patch."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from route_agent.eval.changesets import gold_change_set, pretask_change_set, pretask_paths
from route_agent.eval.classify import classify_tasks
from route_agent.eval.data import Dataset, Task
from route_agent.eval.evaluate import EvalSettings, evaluate
from route_agent.policy import PolicyCache

DATA = Path(__file__).resolve().parents[2] / "data" / "swebench-verified"


def test_pretask_paths_kinds() -> None:
    text = (
        "The bug is in django/db/models/query.py and `django.utils.timezone.now` misbehaves.\n"
        'File "/home/u/venv/lib/python3.9/site-packages/django/forms/fields.py", line 3\n'
        "Also see setup.cfg and https://example.com/a/b.py, and django.db (a package).\n"
        "--- a/django/core/mail.py\n"
    )
    paths = pretask_paths("django/django", text)
    assert paths[0] == "django/db/models/query.py"
    assert "django/forms/fields.py" in paths
    assert "django/core/mail.py" in paths
    assert "django/utils/timezone/now.py" in paths  # a module path (the attribute cannot be told apart)
    assert "setup.cfg" in paths
    assert not any("example.com" in p or p.endswith("/b.py") for p in paths)
    assert "django/db.py" not in paths  # two components name a package, not a file


def test_pretask_change_set_has_no_lines() -> None:
    cs = pretask_change_set("o/pkg", "see pkg/migrations/0001_initial.py")
    assert [f.path for f in cs.files] == ["pkg/migrations/0001_initial.py"]
    assert all(f.added == () and f.removed == () and f.status == "modified" for f in cs.files)
    decision = PolicyCacheRouter().classify(cs)
    assert "schema_change" in decision  # the path still feeds path rules


class PolicyCacheRouter:
    def classify(self, cs: object) -> set[str]:
        from route_agent.routing.decide import Router

        d = Router(PolicyCache().load().policy).classify(cs, "")  # type: ignore[arg-type]
        return {a.condition for a in d.always_strong}


PATCH = """diff --git a/pkg/new.py b/pkg/new.py
new file mode 100644
--- /dev/null
+++ b/pkg/new.py
@@ -0,0 +1,2 @@
+def hello():
+    return 1
diff --git a/pkg/old.py b/pkg/old.py
--- a/pkg/old.py
+++ b/pkg/old.py
@@ -1,2 +1,2 @@
-x = 1
+x = 2
 y = 3
"""


def test_gold_change_set_statuses_and_lines() -> None:
    cs = gold_change_set(PATCH)
    files = {f.path: f for f in cs.files}
    assert files["pkg/new.py"].status == "added" and files["pkg/new.py"].added == ((1, "def hello():"), (2, "    return 1"))
    assert files["pkg/old.py"].status == "modified" and files["pkg/old.py"].removed == ((1, "x = 1"),)


def _tasks(limit: int = 120) -> list[Task]:
    rows = [json.loads(line) for line in (DATA / "tasks.jsonl").read_text(encoding="utf-8").splitlines()[:limit]]
    return [Task(r["instance_id"], r["repo"], r["problem_statement"], r["patch"], i + 1) for i, r in enumerate(rows)]


def test_pretask_never_reads_the_patch() -> None:
    tasks = _tasks()
    policy = PolicyCache().load().policy
    base = classify_tasks(tasks, policy, "pre-task")
    removed = classify_tasks([dataclasses.replace(t, patch=None) for t in tasks], policy, "pre-task")
    altered = classify_tasks([dataclasses.replace(t, patch=PATCH.replace("pkg", "migrations/auth")) for t in tasks], policy, "pre-task")
    for a, b, c in zip(base, removed, altered, strict=True):
        assert a.as_dict() == b.as_dict() == c.as_dict()
    n = len(tasks)
    fast = [i % 2 for i in range(n)]
    strong = [1 if i % 3 else 0 for i in range(n)]
    results = []
    for variant in (tasks, [dataclasses.replace(t, patch=None) for t in tasks], [dataclasses.replace(t, patch="garbage") for t in tasks]):
        ds = Dataset(list(variant), "f", "s", fast, strong, [1.0] * n, [3.0] * n, "price")
        out = evaluate(ds, policy, EvalSettings(mode="pre-task", resamples=50, seed=1))
        results.append(json.dumps(out, sort_keys=True, default=str))
    assert results[0] == results[1] == results[2]


def test_gold_differs_and_is_labelled() -> None:
    tasks = _tasks(60)
    policy = PolicyCache().load().policy
    n = len(tasks)
    ds = Dataset(tasks, "f", "s", [0] * n, [1] * n, [1.0] * n, [3.0] * n, "price")
    out = evaluate(ds, policy, EvalSettings(mode="gold", resamples=0))
    assert out["signals_label"] == "gold (leaky upper bound)" and out["leaky"] is True
    pre = evaluate(ds, policy, EvalSettings(mode="pre-task", resamples=0))
    assert pre["leaky"] is False
    assert [t["risk_score"] for t in out["per_task"]] != [t["risk_score"] for t in pre["per_task"]]

"""The layering rule of DESIGN.md, enforced on every import (function-local and TYPE_CHECKING ones included).

Stages, in data-flow order: data/ -> model/ -> infer/ -> labels/ | metrics/. A stage may import the foundation
(config, files, signals, resources) and stages at or before its own place in the flow; labels/ and metrics/ do not
import each other; no stage imports an orchestrator (train/, the evaluate.py engine affectgpt/results.py, the
`python -m` commands cache / describe / import_official, the CLIs). The foundation imports no stage.
"""

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FOUNDATION = {
    "affectgpt.config",
    "affectgpt.config_values",
    "affectgpt.config_rl",
    "affectgpt.files",
    "affectgpt.signals",
    "affectgpt.resources",
    "affectgpt.user_errors",  # one-line error descriptions for the CLIs (stdlib only)
}
STAGE_RANK = {
    "affectgpt.data": 1,
    "affectgpt.model": 2,
    "affectgpt.infer": 3,
    "affectgpt.labels": 4,
    "affectgpt.metrics": 4,
}
ORCHESTRATORS = {
    "affectgpt.train",
    "affectgpt.results",
    "affectgpt.protocols",
    "affectgpt.compare",
    "affectgpt.eval_cli",
    "affectgpt.report",
    "affectgpt.report_published",
    "affectgpt.report_plot",
    "affectgpt.ov_track",
    "affectgpt.cache",
    "affectgpt.describe",
    "affectgpt.import_official",
    "train",
    "infer",
    "evaluate",
}
SIBLINGS_APART = {("affectgpt.labels", "affectgpt.metrics"), ("affectgpt.metrics", "affectgpt.labels")}


def layer(module: str) -> str:
    """The layer a dotted module name belongs to (the longest matching prefix)."""
    for prefix in sorted(FOUNDATION | set(STAGE_RANK) | ORCHESTRATORS, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return prefix
    if module == "affectgpt":
        return "affectgpt"
    raise AssertionError(f"{module}: in no layer; add it to tests/test_layers.py")


def imports(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, imported affectgpt module) for every import statement anywhere in the source."""
    package = module if is_package else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "affectgpt"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] == "affectgpt":
                out += [(node.lineno, f"{base}.{a.name}" if base == "affectgpt" else base) for a in node.names]
    return out


def violation(importer: str, imported: str) -> str | None:
    a, b = layer(importer), layer(imported)
    if a == b or a in ORCHESTRATORS or a == "affectgpt":
        return None
    if b in ORCHESTRATORS:
        return "a stage or the foundation imports an orchestrator"
    if a in FOUNDATION:
        return None if b in FOUNDATION else "the foundation imports a stage"
    if b in FOUNDATION:
        return None
    if (a, b) in SIBLINGS_APART:
        return "labels/ and metrics/ import each other"
    if STAGE_RANK[b] > STAGE_RANK[a]:
        return f"{a} imports {b}, a later stage of the data flow"
    return None


def violations(sources: dict[str, tuple[str, bool]]) -> list[str]:
    """Every rule break in {module: (source, is_package)}."""
    found = []
    for module, (source, is_package) in sorted(sources.items()):
        for line, imported in imports(source, module, is_package):
            reason = violation(module, imported)
            if reason:
                found.append(f"{module}:{line} imports {imported}: {reason}")
    return found


def project_sources() -> dict[str, tuple[str, bool]]:
    out = {}
    for path in sorted((REPO / "affectgpt").rglob("*.py")):
        rel = path.relative_to(REPO).with_suffix("")
        is_package = rel.name == "__init__"
        name = ".".join(rel.parts[:-1] if is_package else rel.parts)
        out[name] = (path.read_text(encoding="utf-8"), is_package)
    for cli in ("train", "infer", "evaluate"):
        out[cli] = ((REPO / f"{cli}.py").read_text(encoding="utf-8"), False)
    return out


def test_the_project_keeps_the_layering_rule():
    assert violations(project_sources()) == []


def test_a_planted_violation_is_caught():
    planted = {
        "affectgpt.infer.generate": ("from affectgpt.train.stream import BatchStream\n", False),
        "affectgpt.metrics.ew": ("def f():\n    from affectgpt.labels import sentence\n", False),
        "affectgpt.data.records": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from affectgpt.model import build\n",
            False,
        ),
        "affectgpt.files": ("from affectgpt.data.records import DataError\n", False),
        "affectgpt.labels.io": ("from ..metrics import io\n", False),  # relative import, resolved
        "affectgpt.train.loop": ("from affectgpt.results import discover\n", False),  # orchestrators may
    }
    assert violations(planted) == [
        "affectgpt.data.records:3 imports affectgpt.model: "
        "affectgpt.data imports affectgpt.model, a later stage of the data flow",
        "affectgpt.files:1 imports affectgpt.data.records: the foundation imports a stage",
        "affectgpt.infer.generate:1 imports affectgpt.train.stream: a stage or the foundation imports an orchestrator",
        "affectgpt.labels.io:1 imports affectgpt.metrics: labels/ and metrics/ import each other",
        "affectgpt.metrics.ew:2 imports affectgpt.labels: labels/ and metrics/ import each other",
    ]


def test_inference_evaluation_and_the_cache_command_import_without_train(tmp_path):
    """DESIGN.md: with train/ deleted, infer.py, evaluate.py and `python -m affectgpt.cache` still import."""
    shutil.copytree(REPO / "affectgpt", tmp_path / "affectgpt", ignore=shutil.ignore_patterns("__pycache__", "train"))
    for cli in ("infer.py", "evaluate.py"):
        shutil.copy(REPO / cli, tmp_path / cli)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "HF_HUB_OFFLINE": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    code = (
        "import infer, evaluate, affectgpt.cache, affectgpt.results; import affectgpt, sys; print(affectgpt.__file__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == str(tmp_path / "affectgpt" / "__init__.py")
    result = subprocess.run(
        [sys.executable, "-m", "affectgpt.cache", "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0 and result.stdout.startswith("usage:"), result.stderr[-3000:]

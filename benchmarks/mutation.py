"""Mutation testing: how many small deliberate bugs in a module do its tests catch?

  python benchmarks/mutation.py                          # every module of MODULE_TESTS, 40 mutants each
  python benchmarks/mutation.py --module affectgpt/data/media.py --n 60 --show-survivors
  python benchmarks/mutation.py --module affectgpt/metrics/ew.py --tests tests/test_metrics_examples.py

For each module a seeded sample of mutants is drawn from every mutation site the AST offers (comparison,
arithmetic and boolean operators swapped, constants nudged, conditions negated, return values dropped,
call statements removed). Each mutant is written into a scratch copy of the repository and the module's
tests are run against it; a mutant is *killed* when a test fails (or the run times out). Only the tests
that execute the mutated line run (a line no test executes is a survivor without a run): the per-line
test map comes from one coverage run with per-test contexts, so a module costs minutes, not hours. A line
that runs only at import time (module constants, decorators, default values) is executed before any test
starts, yet every test of the module depends on it: its mutants run all of the module's test files.
Equivalent mutants (changes no behaviour can reveal) count as survivors; `--show-survivors` lists them so
a reader can tell which is which. The last line is the summary.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from mutation_sites import apply, find_mutants  # noqa: E402 (a sibling script module)

REPO = Path(__file__).resolve().parents[1]

# module -> the test files that claim to pin its behaviour (the ten modules plus affectgpt.py).
MODULE_TESTS: dict[str, list[str]] = {
    "affectgpt/metrics/ew.py": [
        "tests/test_metrics_examples.py",
        "tests/test_metrics_properties.py",
        "tests/test_metrics_ew_rules.py",
    ],
    "affectgpt/model/fused_loss.py": ["tests/test_fused_loss.py"],
    "affectgpt/data/prompts.py": [
        "tests/test_prompts.py",
        "tests/test_dataset.py",
    ],  # test_modes.py: too slow per mutant
    "affectgpt/metrics/unibench.py": [
        "tests/test_metrics_unibench.py",
        "tests/test_metrics_examples.py",
        "tests/test_metrics_ew_rules.py",
    ],
    "affectgpt/metrics/wheel.py": ["tests/test_metrics_wheel.py", "tests/test_metrics_wheel_files.py"],
    "affectgpt/model/fusion.py": ["tests/test_fusion.py", "tests/test_model.py"],
    "affectgpt/train/checkpoints.py": [
        "tests/test_train_units.py",
        "tests/test_train_checkpoints.py",
        "tests/test_checkpoint_faults.py",
    ],
    "affectgpt/data/records.py": [
        "tests/test_records.py",
        "tests/test_labels_lists.py",
        "tests/test_readers.py",
        "tests/test_readers_fidelity.py",
    ],
    "affectgpt/data/safe_npz.py": ["tests/test_safe_npz.py"],
    "affectgpt/data/media.py": ["tests/test_media.py", "tests/test_media_rules.py", "tests/test_media_paths.py"],
    "affectgpt/model/affectgpt.py": ["tests/test_model.py", "tests/test_generation.py"],
    "affectgpt/metrics/bootstrap.py": ["tests/test_bootstrap.py"],
    "affectgpt/metrics/protocol.py": ["tests/test_protocol.py"],
    "affectgpt/metrics/rewards.py": ["tests/test_grpo_rewards.py"],
    "affectgpt/train/grpo_math.py": ["tests/test_grpo_math.py"],
    "affectgpt/infer/rollout.py": ["tests/test_rollout.py"],
}


def _scratch_copy(repo: Path, workdir: Path) -> Path:
    """A copy of the repository in `workdir/repo`, with `workdir/shared` pointing at the real ../shared."""
    copy = workdir / "repo"
    everywhere = shutil.ignore_patterns("__pycache__", "*.egg-info", ".pytest_cache", ".hypothesis")
    top_level = {".git", ".venv", "data", "checkpoints", "results", "wandb", ".cache", "mutants"}

    def ignore(directory: str, names: list[str]) -> set[str]:
        skipped = set(everywhere(directory, names))
        return skipped | (top_level & set(names) if Path(directory) == repo else set())

    shutil.copytree(repo, copy, ignore=ignore, symlinks=True)
    shared = repo.parent / "shared"
    if shared.exists():
        (workdir / "shared").symlink_to(shared.resolve(), target_is_directory=True)
    return copy


def _env(copy: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(copy) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(HF_HUB_OFFLINE="1", WANDB_MODE="offline", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _pytest(copy: Path, args: list[str], timeout: float) -> tuple[int, float]:
    start = time.time()
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-p", "no:randomly", *args]
    try:
        proc = subprocess.run(
            cmd, cwd=copy, env=_env(copy), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout
        )
        return proc.returncode, time.time() - start
    except subprocess.TimeoutExpired:
        return -9, time.time() - start


IMPORT_TIME = "<import>"  # the coverage context of lines executed outside any test (collection, imports)


def line_tests(copy: Path, module: str, tests: list[str], timeout: float) -> dict[int, set[str]]:
    """line of `module` -> the test contexts that execute it (one coverage run with per-test contexts);
    IMPORT_TIME for lines executed outside every test."""
    data_file = copy / ".mutation-coverage"
    cmd = [
        sys.executable,
        "-m",
        "coverage",
        "run",
        f"--data-file={data_file}",
        f"--include={copy / module}",
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        *tests,
    ]
    env = _env(copy)
    rcfile = copy / ".mutation-coveragerc"
    rcfile.write_text("[run]\ndynamic_context = test_function\n")
    cmd.insert(4, f"--rcfile={rcfile}")
    proc = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(
            f"the tests of {module} fail before any mutation:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}"
        )
    db = sqlite3.connect(data_file)
    out: dict[int, set[str]] = defaultdict(set)
    rows = db.execute(
        "select line_bits.numbits, context.context from line_bits join context on line_bits.context_id = context.id"
    ).fetchall()
    from coverage.numbits import numbits_to_nums

    for numbits, context in rows:
        test = context or IMPORT_TIME
        for line in numbits_to_nums(numbits):
            out[line].add(test)
    db.close()
    return out


def _test_ids(copy: Path, functions: set[str], tests: list[str]) -> list[str]:
    """Map coverage's `module.Class.function` contexts to pytest node ids within `tests`."""
    ids = []
    for qualified in sorted(functions):
        parts = qualified.split(".")
        for test_file in tests:
            stem = Path(test_file).stem
            if stem in parts:
                rest = parts[parts.index(stem) + 1 :]
                ids.append(f"{test_file}::" + "::".join(rest))
                break
    return sorted(set(ids))


@dataclass
class ModuleResult:
    module: str
    total_sites: int
    sampled: int
    killed: int
    uncovered: int
    seconds: float
    survivors: list[str]

    @property
    def score(self) -> float:
        return self.killed / self.sampled if self.sampled else 1.0


def run_module(copy: Path, module: str, tests: list[str], n: int, seed: int, timeout: float) -> ModuleResult:
    start = time.time()
    missing = [t for t in tests if not (copy / t).is_file()]
    tests = [t for t in tests if (copy / t).is_file()]
    if missing:
        print(f"  (no {', '.join(missing)} yet; using {', '.join(tests) or 'nothing'})", flush=True)
    if not tests:
        raise RuntimeError(f"{module}: none of its test files exist")
    path = copy / module
    source = path.read_text(encoding="utf-8")
    sites = find_mutants(source)
    rng = random.Random(f"{seed}:{module}")
    sample = sorted(rng.sample(sites, min(n, len(sites))), key=lambda m: (m.line, m.col))
    coverage = line_tests(copy, module, tests, timeout * 4)
    killed = uncovered = 0
    survivors = []
    try:
        for k, mutant in enumerate(sample, 1):
            covering = set().union(*(coverage.get(line, set()) for line in range(mutant.line, mutant.end_line + 1)))
            node_ids = _test_ids(copy, covering - {IMPORT_TIME}, tests)
            if not node_ids and IMPORT_TIME in covering:
                node_ids = list(tests)  # runs only at import time: every test of the module depends on it
            if not node_ids:
                uncovered += 1
                survivors.append(mutant.label() + "  [no test executes this line]")
                status = "uncovered"
            else:
                mutated = apply(source, mutant)
                try:
                    ast.parse(mutated)
                except SyntaxError:
                    survivors.append(mutant.label() + "  [mutant does not parse: tool bug]")
                    continue
                path.write_text(mutated, encoding="utf-8")
                code, seconds = _pytest(copy, node_ids, timeout)
                path.write_text(source, encoding="utf-8")
                if code != 0:
                    killed += 1
                    status = f"killed ({seconds:.0f} s)"
                else:
                    survivors.append(mutant.label())
                    status = f"SURVIVED ({seconds:.0f} s)"
            print(f"  [{k}/{len(sample)}] {mutant.label()}: {status}", flush=True)
    finally:
        path.write_text(source, encoding="utf-8")
    return ModuleResult(module, len(sites), len(sample), killed, uncovered, time.time() - start, survivors)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--module", action="append", help="module path (repeatable); default: all of MODULE_TESTS")
    parser.add_argument("--tests", action="append", help="test files for --module (default: MODULE_TESTS)")
    parser.add_argument("--n", type=int, default=40, help="mutants sampled per module")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=300, help="seconds per mutant test run (a timeout = killed)")
    parser.add_argument("--repo", default=str(REPO), help="repository to mutate (a scratch copy is made)")
    parser.add_argument("--show-survivors", action="store_true")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    modules = args.module or list(MODULE_TESTS)
    results = []
    with tempfile.TemporaryDirectory(prefix="mutation-") as tmp:
        copy = _scratch_copy(Path(args.repo).resolve(), Path(tmp))
        for module in modules:
            tests = args.tests or MODULE_TESTS.get(module)
            if not tests:
                raise SystemExit(f"{module}: no tests known; pass --tests")
            print(f"== {module} ({', '.join(tests)})", flush=True)
            results.append(run_module(copy, module, tests, args.n, args.seed, args.timeout))
    print()
    print(f"{'module':<36} {'sites':>6} {'sampled':>8} {'killed':>7} {'uncov.':>7} {'score':>7} {'time':>7}")
    for r in results:
        print(
            f"{r.module:<36} {r.total_sites:>6} {r.sampled:>8} {r.killed:>7} {r.uncovered:>7} "
            f"{r.score:>7.0%} {r.seconds:>6.0f}s"
        )
        if args.show_survivors:
            for s in r.survivors:
                print(f"    survived: {s}")
    if args.json:
        Path(args.json).write_text(json.dumps([r.__dict__ | {"score": r.score} for r in results], indent=1))
    total_killed = sum(r.killed for r in results)
    total = sum(r.sampled for r in results)
    worst = min(results, key=lambda r: r.score)
    print(
        f"mutation: {total_killed}/{total} killed ({total_killed / max(total, 1):.0%}) over {len(results)} modules; "
        f"lowest {worst.module} {worst.score:.0%}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

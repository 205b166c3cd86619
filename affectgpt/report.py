"""`evaluate.py report`: one run's MER-UniBench table with intervals, protocol, published rows and provenance.

Reads what `evaluate.py run` left (label files and unibench.json in `<answers>/eval-<extractor>/`, the answers'
`.meta.json` beside them) and recomputes every number from the label files with the same code as `unibench`
(metrics/bootstrap.py for the intervals, protocols.py for `--protocol paper`), so the report cannot drift from
the scores; nothing is generated or extracted here, which keeps it to seconds.

Accepted --results-dir:
- selected: an infer.py answer folder holding one `eval-<extractor>/` (or pass --extractor), or the
  `eval-<extractor>/` folder itself, or any folder in the `unibench --all` layout (then --data-roots-from);
- paper: a folder of epoch folders (`epoch_030/`, each as above) or of official `checkpoint_0000NN_*` npz files.
Data roots come from the answers' `.meta.json` (as infer.py wrote them), else data.unibench_roots of
--data-roots-from.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from affectgpt.compare import run_samples
from affectgpt.config import load_config
from affectgpt.data.unibench import UNIBENCH_ORDER
from affectgpt.infer.outputs import META_SUFFIX, read_meta
from affectgpt.labels.io import find_result_files
from affectgpt.metrics.bootstrap import nine_set_mean_interval
from affectgpt.metrics.wheel import DEMO_WHEEL_DIR, WHEEL_FILES, EmotionWheel, get_wheel, load_wheel
from affectgpt.protocols import epoch_files, paper_report, read_val_scores

RULE_EXTRACTORS = {"parser": "parse_label_sentence (rule-based, no model)"}
# Official -openset.npz files come from evaluation.py's Qwen2.5-7B-Instruct prompt (reference §6).
OFFICIAL_EXTRACTOR = "official evaluation.py labels (Qwen2.5-7B-Instruct prompt, reference §6)"


@dataclass
class ReportOptions:
    protocol: str = "selected"  # selected | paper
    epochs: list[int] | None = None
    extractor: str | None = None
    data_roots_from: str | None = None
    wheel_dir: str | None = None
    demo_wheel: bool = False
    val_scores: str | None = None
    n_resamples: int = 1000
    seed: int = 0
    allow_missing: bool = False
    published: str | None = None  # None, or the published row the deltas use ("A,V,T", "V,T", "A,T")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def wheel_hashes(wheel: EmotionWheel) -> dict[str, str]:
    """sha256 of every wheel file the scores used (wheel1-5.xlsx, synonym.xlsx, format.csv)."""
    return {name: sha256_file(Path(wheel.directory) / name) for name in WHEEL_FILES}


def _has_labels(folder: Path) -> bool:
    return any(find_result_files(folder, name) != (None, None) for name in UNIBENCH_ORDER)


def label_folder(folder: Path, extractor: str | None) -> Path:
    """The folder holding the `<Dataset>-openset/-sentiment` files of one checkpoint's answers."""
    if extractor and (folder / f"eval-{extractor}").is_dir():
        return folder / f"eval-{extractor}"
    if _has_labels(folder):
        return folder
    evals = sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith("eval-") and _has_labels(p))
    if len(evals) == 1:
        return evals[0]
    if evals:
        names = ", ".join(p.name for p in evals)
        raise ValueError(f"{folder}: several extractor folders ({names}); choose one with --extractor")
    raise ValueError(f"{folder}: no <Dataset>-openset/-sentiment files and no eval-<extractor>/ (run evaluate.py run)")


def answer_metas(labels: Path) -> dict[str, dict[str, Any]]:
    """dataset -> infer.py metadata of the answers behind a label folder (its parent, or itself)."""
    metas: dict[str, dict[str, Any]] = {}
    for folder in (labels.parent, labels) if labels.name.startswith("eval-") else (labels,):
        for path in sorted(folder.glob(f"*{META_SUFFIX}")):
            meta = read_meta(path.with_name(path.name[: -len(META_SUFFIX)] + ".jsonl"))
            if meta and meta.get("dataset") in UNIBENCH_ORDER:
                metas.setdefault(meta["dataset"], meta)
    return metas


def _table(labels: Path) -> dict[str, Any]:
    path = labels / "unibench.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _wheel(opts: ReportOptions, table: dict[str, Any], cfg_wheel: str | None) -> EmotionWheel:
    """--wheel-dir; else the wheel `evaluate.py run` recorded (a path, or "demo"); else the config's / env."""
    if opts.wheel_dir:
        return load_wheel(opts.wheel_dir, allow_demo=opts.demo_wheel)
    recorded = table.get("wheel")
    if recorded == "demo":
        return get_wheel(DEMO_WHEEL_DIR, True)
    if recorded:
        return load_wheel(recorded)
    return load_wheel(cfg_wheel, allow_demo=opts.demo_wheel)


def _roots(metas: dict[str, dict[str, Any]], opts: ReportOptions) -> tuple[dict[str, str], str | None]:
    roots, cfg_wheel = {}, None
    if opts.data_roots_from:
        cfg = load_config(opts.data_roots_from)
        roots, cfg_wheel = dict(cfg.data.unibench_roots), cfg.eval.wheel_dir or None
    roots.update({d: m["data_root"] for d, m in metas.items() if m.get("data_root")})
    return roots, cfg_wheel


def _provenance(table: dict[str, Any], metas: dict, wheel: EmotionWheel, opts: ReportOptions) -> dict[str, Any]:
    extractor = table.get("extractor") or opts.extractor or table.get("_official") or "unknown (no unibench.json)"
    model = table.get("extractor_model") or RULE_EXTRACTORS.get(extractor, "unknown (not recorded)")
    return {
        "wheel": wheel.label,
        "wheel_dir": str(wheel.directory),
        "wheel_sha256": wheel_hashes(wheel),
        "extractor": extractor,
        "extractor_model": model,
        "checkpoints": sorted({str(m["checkpoint"]) for m in metas.values() if m.get("checkpoint")}),
        "n_resamples": opts.n_resamples,
        "seed": opts.seed,
    }


def _selected(results_dir: Path, opts: ReportOptions) -> dict[str, Any]:
    labels = label_folder(results_dir, opts.extractor)
    metas, table = answer_metas(labels), _table(labels)
    roots, cfg_wheel = _roots(metas, opts)
    wheel = _wheel(opts, table, cfg_wheel)
    sets, skipped = run_samples(labels, roots, wheel, opts.allow_missing)
    if not sets:
        hint = "; pass --data-roots-from CONFIG" if any("no data root" in x for x in skipped) else ""
        reasons = [x for x in skipped if "no label files" not in x] or skipped
        raise ValueError(f"{labels}: no set to score ({'; '.join(reasons)}){hint}")
    result = nine_set_mean_interval(sets, opts.n_resamples, opts.seed)
    text = (
        f"selected: one checkpoint's answers ({labels}), every set scored once; the mean is over the "
        f"{len(sets)} scored set(s). This is NOT the protocol of the published rows (paper: per-dataset best epoch)."
    )
    return {
        "protocol": "selected",
        "protocol_text": text,
        "labels_dir": str(labels),
        "intervals": result.per_dataset,
        "mean": result.mean,
        "skipped": skipped,
        "provenance": _provenance(table, metas, wheel, opts),
    }


def _epoch_labels(results_dir: Path, opts: ReportOptions) -> list[Path]:
    """The label folders of our per-epoch layout (empty for official npz folders)."""
    out = []
    for epoch in opts.epochs or []:
        for name in UNIBENCH_ORDER:
            files = epoch_files(results_dir, name, opts.extractor).get(epoch)
            if files and files != (None, None):
                out.append(next(f for f in files if f is not None).parent)
                break
    return out


def paper_inputs(results_dir: Path, opts: ReportOptions) -> tuple[dict[str, Any], dict[str, str], EmotionWheel]:
    """(metas, first epoch's unibench.json and all checkpoints; data roots; wheel) of a folder of epochs."""
    metas: dict[str, dict[str, Any]] = {}
    checkpoints: set[str] = set()
    folders = _epoch_labels(results_dir, opts)
    for folder in folders:
        found = answer_metas(folder)
        checkpoints.update(str(m["checkpoint"]) for m in found.values() if m.get("checkpoint"))
        for d, m in found.items():
            metas.setdefault(d, m)
    table = _table(folders[0]) if folders else {}
    if folders and not table and any(p.name.startswith("checkpoint_") for p in folders[0].iterdir()):
        table = {"_official": OFFICIAL_EXTRACTOR}
    roots, cfg_wheel = _roots(metas, opts)
    info = {"metas": metas, "table": table, "checkpoints": sorted(checkpoints)}
    return info, roots, _wheel(opts, table, cfg_wheel)


def _paper(results_dir: Path, opts: ReportOptions) -> dict[str, Any]:
    if not opts.epochs:
        raise ValueError("--protocol paper needs --epochs, e.g. 30-60:5")
    info, roots, wheel = paper_inputs(results_dir, opts)
    paper = paper_report(
        results_dir,
        roots,
        wheel,
        opts.epochs,
        read_val_scores(opts.val_scores),
        n_resamples=opts.n_resamples,
        seed=opts.seed,
        allow_missing=opts.allow_missing,
        partial=True,
        extractor=opts.extractor,
    )
    provenance = _provenance(info["table"], info["metas"], wheel, opts)
    provenance["checkpoints"] = info["checkpoints"]
    text = (
        f"paper (the official evaluation.py, and the protocol of the published rows): every epoch of "
        f"{paper.epochs} scored on each test set, per dataset the best epoch on that test set; the mean is the "
        f"mean of those maxima. Beside it one common epoch {paper.common_epoch} ({paper.common_selected_by})."
    )
    return {
        "protocol": "paper",
        "protocol_text": text,
        "intervals": paper.best,
        "mean": paper.mean_of_maxima,
        "best_epoch": paper.best_epoch,
        "common_epoch": paper.common_epoch,
        "common_selected_by": paper.common_selected_by,
        "common": paper.common,
        "common_mean": paper.common_mean,
        "gap": paper.gap,
        "skipped": paper.skipped,
        "provenance": provenance,
    }


def build_report(results_dir: str | Path, opts: ReportOptions) -> dict[str, Any]:
    """All numbers of report.md (Interval objects; report_json() turns them into fractions)."""
    directory = Path(results_dir)
    if not directory.is_dir():
        raise ValueError(f"{directory}: results directory not found")
    report = _paper(directory, opts) if opts.protocol == "paper" else _selected(directory, opts)
    report["results_dir"] = str(directory)
    report["published"] = opts.published
    return report


def report_json(report: dict[str, Any]) -> dict[str, Any]:
    """The report as JSON-ready data (intervals as their to_dict(); fractions, not x100)."""
    out: dict[str, Any] = {}
    for key, value in report.items():
        if hasattr(value, "to_dict"):
            out[key] = value.to_dict()
        elif isinstance(value, dict) and value and all(hasattr(v, "to_dict") for v in value.values()):
            out[key] = {k: v.to_dict() for k, v in value.items()}
        else:
            out[key] = value
    return out

"""The `evaluate.py` subcommands for studies beyond one table: compare (paired bootstrap), ablation (the A/V/T
table of infer.py variants), submission (MER2025 `-openset.npz`), ov (the MER2025 OV track score), report
(report.md + PNG) and `run --protocol paper` (per-epoch `run`, then the paper protocol); kept here so evaluate.py
stays small."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from affectgpt.compare import ablation_markdown, ablation_rows, compare_markdown, compare_runs
from affectgpt.config import load_config
from affectgpt.labels.io import load_name_values
from affectgpt.labels.submission import write_submission
from affectgpt.metrics.io import write_json
from affectgpt.metrics.protocol import parse_epochs
from affectgpt.metrics.wheel import load_wheel
from affectgpt.ov_track import OV_DATASETS, ov_markdown, score_ov_track
from affectgpt.protocols import epoch_answer_folders, paper_markdown, paper_report, read_val_scores
from affectgpt.report import ReportOptions, build_report, paper_inputs, report_json
from affectgpt.report_plot import write_png
from affectgpt.report_published import report_markdown


def cmd_compare(args: argparse.Namespace) -> int:
    cfg = load_config(args.data_roots_from)
    wheel = load_wheel(args.wheel_dir or cfg.eval.wheel_dir or None, allow_demo=args.demo_wheel)
    result, notes = compare_runs(
        args.a, args.b, cfg.data.unibench_roots, wheel, args.n_resamples, args.seed, args.allow_missing
    )
    markdown = compare_markdown(result, notes, args.n_resamples)
    print(f"A = {args.a}\nB = {args.b}\n{markdown}")
    if args.out:
        data = {d: diff.to_dict() for d, diff in result.per_dataset.items()}
        print(f"wrote {write_json(args.out, {**data, 'mean': result.mean.to_dict(), 'notes': notes})}")
    return 0


def cmd_ablation(args: argparse.Namespace) -> int:
    print(ablation_markdown(ablation_rows(args.results_dir, args.extractor)))
    return 0


def cmd_submission(args: argparse.Namespace) -> int:
    labels = load_name_values(args.labels)
    out = write_submission(args.out, labels, args.candidates)
    print(f"wrote {out}: {len(labels)} names, validated against {args.candidates}")
    return 0


def run_paper(args: argparse.Namespace, run_one: Callable[[argparse.Namespace], int]) -> int:
    """`run --protocol paper`: `run` on each epoch's answer folder, then the paper protocol over their labels."""
    if not args.epochs:
        raise ValueError("--protocol paper needs --epochs, e.g. 30-60:5")
    if args.out_dir:
        raise ValueError(
            "--protocol paper writes each epoch's labels to <epoch folder>/eval-<extractor>/; drop --out-dir"
        )
    epochs = parse_epochs(args.epochs)
    folders = epoch_answer_folders(args.results_dir, epochs)
    for epoch, folder in folders.items():
        print(f"== epoch {epoch}: {folder}")
        sub = argparse.Namespace(**{**vars(args), "protocol": "selected", "results_dir": folder, "out": None})
        run_one(sub)
        args.extractor, args.llm = sub.extractor, sub.llm  # what the first epoch resolved holds for all
    opts = ReportOptions(
        protocol="paper",
        epochs=epochs,
        extractor=args.extractor,
        data_roots_from=args.data_roots_from,
        wheel_dir=args.wheel_dir,
        demo_wheel=args.demo_wheel,
    )
    _, roots, wheel = paper_inputs(Path(args.results_dir), opts)
    report = paper_report(
        args.results_dir,
        roots,
        wheel,
        epochs,
        read_val_scores(args.val_scores),
        n_resamples=args.n_resamples,
        seed=args.seed,
        allow_missing=args.allow_missing,
        partial=args.partial,
        extractor=args.extractor,
    )
    markdown = paper_markdown(report)
    print(markdown)
    out = Path(args.out) if args.out else Path(args.results_dir) / "unibench-paper.json"
    write_json(out, {**report.to_dict(), "wheel": wheel.name, "extractor": args.extractor})
    out.with_suffix(".md").write_text(markdown + "\n", encoding="utf-8")
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    opts = ReportOptions(
        protocol=args.protocol,
        epochs=parse_epochs(args.epochs) if args.epochs else None,
        extractor=args.extractor,
        data_roots_from=args.data_roots_from,
        wheel_dir=args.wheel_dir,
        demo_wheel=args.demo_wheel,
        val_scores=args.val_scores,
        n_resamples=args.n_resamples,
        seed=args.seed,
        allow_missing=args.allow_missing,
        published=args.published_row if args.compare == "published" else None,
    )
    report = build_report(args.results_dir, opts)
    markdown = report_markdown(report)
    print(markdown)
    out = Path(args.out or args.results_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(markdown + "\n", encoding="utf-8")
    write_json(out / "report.json", report_json(report))
    write_png(report, out / "report.png")
    print(f"wrote {out / 'report.md'}, {out / 'report.json'} and {out / 'report.png'}")
    return 0


def cmd_ov(args: argparse.Namespace) -> int:
    cfg = load_config(args.config) if args.config else None
    wheel_dir = args.wheel_dir or (cfg.eval.wheel_dir if cfg else None) or None
    wheel = load_wheel(wheel_dir, data_root=cfg.data.root if cfg else None, allow_demo=args.demo_wheel)
    result = score_ov_track(
        args.gt, args.pred, wheel, args.candidates, args.allow_missing, args.n_resamples, args.seed, args.dataset
    )
    print(ov_markdown(result))
    print(f"wheel: {wheel.label}")
    if args.out:
        print(f"wrote {write_json(args.out, {**result.to_dict(), 'wheel': wheel.name})}")
    return 0


def add_study_commands(commands, wheel_options: Callable[[argparse.ArgumentParser], None]) -> None:
    cmp = commands.add_parser("compare", help="paired bootstrap: does run B beat run A, per set and on the mean?")
    cmp.add_argument("a", help="results folder of run A (the `unibench --all` layout, e.g. <run>/eval-parser)")
    cmp.add_argument("b", help="results folder of run B")
    cmp.add_argument("--data-roots-from", required=True, help="YAML config with data.unibench_roots")
    cmp.add_argument("--n-resamples", type=int, default=1000, help="bootstrap resamples")
    cmp.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    wheel_options(cmp)
    cmp.set_defaults(func=cmd_compare)

    abl = commands.add_parser("ablation", help="A/V/T ablation table from infer.py --drop / --shuffle-media variants")
    abl.add_argument("--results-dir", required=True, help="folder of <ckpt>/ and <ckpt>-<variant>/ result folders")
    abl.add_argument("--extractor", default="parser", help="read <variant>/eval-<extractor>/unibench.json")
    abl.set_defaults(func=cmd_ablation)

    sub = commands.add_parser(
        "submission",
        help="MER2025 OV-track submission: labels -> official -openset.npz, checked against the candidate list",
    )
    sub.add_argument("--labels", required=True, help="name,openset CSV (e.g. evaluate.py run's MER2025OV-openset.csv)")
    sub.add_argument("--candidates", required=True, help="track_all_candidates.csv (column name)")
    sub.add_argument("--out", required=True, help="the submission file, <anything>-openset.npz")
    sub.set_defaults(func=cmd_submission)

    ov = commands.add_parser(
        "ov", help="MER2025 OV track / MER2026 fine-grained score: EW F1 over W1-W5 at L1, with a 95% interval"
    )
    ov.add_argument("--dataset", choices=OV_DATASETS, default="MER2025OV", help="the challenge set (its rule)")
    ov.add_argument("--gt", required=True, help="track2_test-style labels: CSV name,openset (or -openset.npz)")
    ov.add_argument("--pred", required=True, help="predictions: CSV name,openset or the -openset.npz submission")
    ov.add_argument("--candidates", help="track_all_candidates.csv: predictions must cover exactly these names")
    ov.add_argument("--config", help="YAML config: eval.wheel_dir and data.root locate the wheel")
    ov.add_argument("--n-resamples", type=int, default=1000, help="bootstrap resamples")
    ov.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    wheel_options(ov)
    ov.set_defaults(func=cmd_ov)

    rep = commands.add_parser(
        "report", help="report.md + report.png: the table with 95% intervals, protocol, published rows, provenance"
    )
    rep.add_argument("--results-dir", required=True, help="infer.py answer folder (with eval-<extractor>/), or epochs")
    rep.add_argument("--protocol", choices=["selected", "paper"], default="selected", help="as `unibench --protocol`")
    rep.add_argument("--epochs", help="--protocol paper: epochs to score, e.g. 30-60:5")
    rep.add_argument(
        "--val-scores", help="--protocol paper: JSON epoch -> score, or the run's metrics.jsonl (the common epoch)"
    )
    rep.add_argument("--extractor", help="read <results-dir>/eval-<extractor>/ (default: the only eval-* folder)")
    rep.add_argument("--data-roots-from", help="YAML config with data.unibench_roots (default: the answers' meta)")
    rep.add_argument("--compare", choices=["published"], help="published: the paper's AffectGPT rows and deltas")
    rep.add_argument("--published-row", choices=["A,V,T", "V,T", "A,T"], default="A,V,T", help="row for the deltas")
    rep.add_argument("--n-resamples", type=int, default=1000, help="bootstrap resamples")
    rep.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    rep.add_argument("--wheel-dir", help="emotion_wheel/ folder (default: the wheel `evaluate.py run` recorded)")
    rep.add_argument("--demo-wheel", action="store_true", help="allow the bundled demo wheel (not comparable)")
    rep.add_argument("--allow-missing", action="store_true", help="count GT names without prediction as empty")
    rep.add_argument("--out", help="output folder for report.md/.json/.png (default: --results-dir)")
    rep.set_defaults(func=cmd_report)

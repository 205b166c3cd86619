"""Score result files: EW-based OV metrics (`ew`) and MER-UniBench (`unibench`).

  python evaluate.py ew --gt GT --pred PRED [--wheel-dir DIR] [--out OUT.json]
  python evaluate.py unibench --dataset NAME --data-root DIR --pred PRED [--sentiment SENT] [--out OUT.json]
  python evaluate.py unibench --all --data-roots-from CONFIG --results-dir DIR [--out OUT.json]
  python evaluate.py run --results-dir DIR [--extractor parser|lexicon|llm] [--llm PATH]   # infer.py outputs -> table
  python evaluate.py run --results-dir RUN_RESULTS --protocol paper --epochs 30-60:5  # per-dataset best epoch
  python evaluate.py report --results-dir DIR [--compare published] [--protocol paper --epochs 30-60:5]
  python evaluate.py ov --gt track2_test.csv --pred X-openset.npz [--candidates track_all_candidates.csv]
  python evaluate.py submission --labels X-openset.csv --candidates track_all_candidates.csv --out Y-openset.npz

Label files: CSV `name,openset` (openset like `[happy, sad]`) or official `-openset.npz`
(filenames, fileitems). Sentiment files: CSV `name,sentiment` or an npz of the same form.
Results directory for --all: see RESULTS_LAYOUT below (`evaluate.py unibench --help`).
Emotion wheel: --wheel-dir, else config eval.wheel_dir, else $AFFECTGPT_WHEEL_DIR, else <data root>/emotion_wheel.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from affectgpt.compare import interval_markdown, selected_intervals
from affectgpt.config import ConfigError, load_config
from affectgpt.data.records import DataError
from affectgpt.data.unibench import UNIBENCH_ORDER, get_spec
from affectgpt.eval_cli import add_study_commands, run_paper
from affectgpt.labels.io import find_result_files, load_name_values
from affectgpt.metrics.ew import ew_scores
from affectgpt.metrics.io import align, write_json
from affectgpt.metrics.protocol import parse_epochs
from affectgpt.metrics.report import dataset_summary, ew_table
from affectgpt.metrics.unibench import score_dataset, table_markdown, unibench_table
from affectgpt.metrics.wheel import EmotionWheel, WheelError, load_wheel, resolve_wheel
from affectgpt.protocols import paper_markdown, paper_report, read_val_scores

RESULTS_LAYOUT = """\
Results directory (--results-dir) for --all, one file set per dataset (names match case-insensitively):
  <DIR>/<Dataset>-openset.csv  (name,openset)  or  <DIR>/<Dataset>-openset.npz (filenames, fileitems)
      for MER2023, MER2024, MELD, IEMOCAPFour and OVMERDPlus;
  <DIR>/<Dataset>-sentiment.csv (name,sentiment)  or  <Dataset>-sentiment.npz / <Dataset>-openset-sentiment.npz
      for CMUMOSI, CMUMOSEI, SIMS and SIMSv2 (sentiment words come from sentiment extraction of the OV labels).
Dataset folders come from data.unibench_roots of the --data-roots-from config. The table is written to
<DIR>/unibench.json and <DIR>/unibench.md (or --out OUT.json and OUT.md); --partial allows missing datasets.
"""


def _wheel(args: argparse.Namespace, data_root: str | None = None) -> EmotionWheel:
    wheel_dir = args.wheel_dir
    if not wheel_dir and getattr(args, "config", None):
        cfg = load_config(args.config)
        wheel_dir = cfg.eval.wheel_dir or None
        data_root = data_root or cfg.data.root
    return load_wheel(wheel_dir, data_root=data_root, allow_demo=args.demo_wheel)


def cmd_ew(args: argparse.Namespace) -> int:
    wheel = _wheel(args)
    gt = load_name_values(args.gt)
    aligned = align(gt, load_name_values(args.pred), args.allow_missing, fill="[]", source=str(args.pred))
    result = ew_scores(gt, aligned.values, wheel)
    result.notes.extend(aligned.notes())
    data = {**result.to_dict(), **aligned.to_dict()}
    print(ew_table(data))
    if args.out:
        print(f"wrote {write_json(args.out, data)}")
    return 0


def _unibench_paper(args: argparse.Namespace) -> int:
    if not (args.data_roots_from and args.results_dir and args.epochs):
        raise ValueError("--protocol paper needs --results-dir DIR --data-roots-from CONFIG --epochs 30-60:5")
    cfg = load_config(args.data_roots_from)
    wheel = load_wheel(args.wheel_dir or cfg.eval.wheel_dir or None, allow_demo=args.demo_wheel)
    report = paper_report(
        args.results_dir,
        cfg.data.unibench_roots,
        wheel,
        parse_epochs(args.epochs),
        read_val_scores(args.val_scores),
        n_resamples=args.n_resamples,
        seed=args.seed,
        allow_missing=args.allow_missing,
        partial=args.partial,
    )
    markdown = paper_markdown(report)
    print(markdown)
    if wheel.is_demo:
        print("wheel: demo (not comparable with published scores)")
    out = Path(args.out) if args.out else Path(args.results_dir) / "unibench-paper.json"
    _write_table(out, {**report.to_dict(), "wheel": wheel.name}, markdown)
    return 0


def cmd_unibench(args: argparse.Namespace) -> int:
    if args.protocol == "paper":
        return _unibench_paper(args)
    if args.all:
        return _unibench_all(args)
    if not (args.dataset and args.data_root):
        raise ValueError(
            "unibench needs --dataset NAME --data-root DIR (or --all --data-roots-from CONFIG --results-dir DIR)"
        )
    if not (args.pred or args.sentiment):
        raise ValueError("give --pred (openset file) and/or --sentiment (name,sentiment file)")
    openset = load_name_values(args.pred) if args.pred else None
    sentiment = load_name_values(args.sentiment, column="sentiment") if args.sentiment else None
    needs_wheel = get_spec(args.dataset).task != "dimension"  # sentiment scores use no wheel
    wheel = _wheel(args, data_root=args.data_root) if needs_wheel else None
    score = score_dataset(args.dataset, args.data_root, wheel, openset, sentiment, args.allow_missing)
    print(dataset_summary(score))
    if args.out:
        print(f"wrote {write_json(args.out, score.to_dict())}")
    return 0


def _unibench_all(args: argparse.Namespace) -> int:
    if not (args.data_roots_from and args.results_dir):
        raise ValueError("--all needs --data-roots-from CONFIG and --results-dir DIR")
    cfg = load_config(args.data_roots_from)
    roots = cfg.data.unibench_roots
    wheel = load_wheel(args.wheel_dir or cfg.eval.wheel_dir or None, allow_demo=args.demo_wheel)
    scores, problems = {}, []
    for name in UNIBENCH_ORDER:
        openset_path, sentiment_path = find_result_files(args.results_dir, name)
        if name not in roots:
            problems.append(f"{name}: no root in data.unibench_roots of {args.data_roots_from}")
            continue
        if openset_path is None and sentiment_path is None:
            problems.append(f"{name}: no {name}-openset.csv/.npz (or sentiment file) in {args.results_dir}")
            continue
        openset = load_name_values(openset_path) if openset_path else None
        sentiment = load_name_values(sentiment_path, column="sentiment") if sentiment_path else None
        scores[name] = score_dataset(name, roots[name], wheel, openset, sentiment, args.allow_missing)
        print(dataset_summary(scores[name]) + "\n")
    if problems and not args.partial:
        raise ValueError("cannot build the full table:\n  " + "\n  ".join(problems) + "\n(--partial scores the rest)")
    table = unibench_table(scores)
    table["problems"] = problems
    table["wheel"] = wheel.name
    markdown = table_markdown(table)
    if args.n_resamples > 0:
        intervals = selected_intervals(args.results_dir, roots, wheel, args.n_resamples, args.seed, args.allow_missing)
        table["intervals"] = {d: iv.to_dict() for d, iv in intervals.per_dataset.items()}
        table["intervals"]["mean"] = intervals.mean.to_dict()
        markdown += "\n\n" + interval_markdown(intervals, args.n_resamples)
    print(markdown)
    if wheel.is_demo:
        print("wheel: demo (not comparable with published scores)")
    _write_table(Path(args.out) if args.out else Path(args.results_dir) / "unibench.json", table, markdown)
    return 0


def _write_table(out: Path, table: dict, markdown: str) -> None:
    """The table as OUT.json and its markdown as OUT.md."""
    write_json(out, table)
    out.with_suffix(".md").write_text(markdown + "\n", encoding="utf-8")
    print(f"wrote {out} and {out.with_suffix('.md')}")


RUN_HELP = """\
Takes infer.py answer files (<DIR>/<Dataset>.jsonl|.csv with their .meta.json, or official name2reason
<Dataset>.npz) through OV-label extraction to scores: the MER-UniBench table for the nine test sets, EW
scores for other OV-labelled sets (e.g. the `val` split of a training run, scored exactly as the run
validated). Extractors: parser (the "emotional state is ..." sentence; default), lexicon (emotion-wheel
words, offline), llm (the official Qwen2.5-Instruct prompt, --llm PATH). Extraction results are cached
by content in <DIR>/.extract-cache, so a re-run costs nothing. Derived files and unibench.json/.md go
to --out-dir (default <DIR>/eval-<extractor>/), in the layout `unibench --all` reads.
"""


def _run_wheel(args: argparse.Namespace, sets: list) -> EmotionWheel:
    """--wheel-dir; else the training run's own resolution (its stored config); else --config / env / demo opt-in."""
    if not (args.wheel_dir or args.config):
        stored = next((rs.config for rs in sets if rs.config is not None), None)
        if stored is not None:
            return resolve_wheel(stored)
    return _wheel(args)


def _extractor_defaults(args: argparse.Namespace, sets: list) -> None:
    """--extractor / --llm not given: the recipe's eval.extractor / eval.extractor_llm (the results' stored config,
    else --config), so a recipe describes the whole run; parser when no config says otherwise."""
    cfg = next((rs.config for rs in sets if rs.config is not None), None)
    if cfg is None and args.config:
        cfg = load_config(args.config)
    if args.extractor is None:
        args.extractor = cfg.eval.extractor if cfg is not None else "parser"
        print(f"extractor: {args.extractor} ({'eval.extractor of the config' if cfg is not None else 'default'})")
    if args.llm is None and cfg is not None and cfg.eval.extractor_llm:
        args.llm = cfg.eval.extractor_llm


def cmd_run(args: argparse.Namespace) -> int:
    if args.protocol == "paper":
        return run_paper(args, cmd_run)
    from affectgpt.labels.extract import LabelExtractor
    from affectgpt.results import (
        discover,
        ew_markdown,
        score_ov_set,
        score_unibench_set,
    )

    sets, notes = discover(args.results_dir)
    for note in notes:
        print(f"note: {note}")
    if not sets:
        raise ValueError(f"no answer files in {args.results_dir} (expected <Dataset>.jsonl/.csv from infer.py)")
    wheel = _run_wheel(args, sets)
    roots = load_config(args.data_roots_from).data.unibench_roots if args.data_roots_from else {}
    llm_options = {
        "batch_size": args.llm_batch_size,
        "max_new_tokens": args.llm_max_new_tokens,
        "official_sampling": args.official_sampling,
        "seed": args.seed,
        "backend": args.backend,
    }
    _extractor_defaults(args, sets)
    extractor = LabelExtractor(
        args.extractor,
        cache_dir=args.cache_dir or Path(args.results_dir) / ".extract-cache",
        wheel_dir=wheel.directory,
        llm_path=args.llm,
        llm_options=llm_options,
    )
    out_dir = Path(args.out_dir or Path(args.results_dir) / f"eval-{args.extractor}")
    out_dir.mkdir(parents=True, exist_ok=True)
    scores, ew, extraction, problems = {}, {}, {}, []
    for rs in sets:
        try:
            if rs.is_unibench:
                result, extraction[rs.dataset] = score_unibench_set(
                    rs, extractor, wheel, out_dir, roots, args.allow_missing
                )
            else:
                result, extraction[rs.dataset] = score_ov_set(rs, extractor, wheel, out_dir)
        except (DataError, ValueError, KeyError) as err:
            problems.append(f"{rs.dataset} ({rs.path.name}): {err}")
            continue
        if rs.is_unibench:
            scores[rs.dataset] = result
            print(dataset_summary(result) + "\n")
        else:
            ew[rs.dataset] = result
    if problems and not args.partial:
        raise ValueError("cannot score:\n  " + "\n  ".join(problems) + "\n(--partial scores the rest)")
    table = unibench_table(scores)
    table.update(problems=problems, wheel=wheel.name, extractor=args.extractor, ew=ew, extraction=extraction)
    table["extraction_computed"] = extractor.n_computed
    table["extractor_model"] = extractor.source  # provenance for `evaluate.py report`
    parts = [table_markdown(table)] if scores else []
    parts += [ew_markdown(ew)] if ew else []
    markdown = "\n\n".join(parts)
    print(markdown)
    print(f"extractor: {args.extractor} ({extractor.n_computed} new extraction(s), the rest from the cache)")
    if wheel.is_demo:
        print("wheel: demo (not comparable with published scores)")
    _write_table(Path(args.out) if args.out else out_dir / "unibench.json", table, markdown)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    def wheel_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--wheel-dir", help="official emotion_wheel/ folder (wheel1-5.xlsx, synonym.xlsx, format.csv)")
        sub.add_argument(
            "--demo-wheel",
            action="store_true",
            help="fall back to the bundled demo wheel (scores NOT comparable with published ones)",
        )
        sub.add_argument("--allow-missing", action="store_true", help="count GT names without prediction as empty")
        sub.add_argument("--out", help="write the results as JSON here")

    ew = commands.add_parser("ew", help="EW-based M1/M2/M3 precision, recall and F (OV-MER)")
    ew.add_argument("--gt", required=True, help="GT labels: CSV name,openset or -openset.npz")
    ew.add_argument("--pred", required=True, help="predicted labels: CSV name,openset or -openset.npz")
    ew.add_argument("--config", help="YAML config: eval.wheel_dir and data.root locate the wheel")
    wheel_options(ew)
    ew.set_defaults(func=cmd_ew)

    uni = commands.add_parser(
        "unibench",
        help="MER-UniBench scores for one dataset or the full table",
        description=RESULTS_LAYOUT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    uni.add_argument("--dataset", help=f"one of {', '.join(UNIBENCH_ORDER)}")
    uni.add_argument("--data-root", help="the dataset's official folder")
    uni.add_argument("--pred", help="predicted labels: CSV name,openset or -openset.npz")
    uni.add_argument("--sentiment", help="dimension datasets: CSV name,sentiment (or npz)")
    uni.add_argument("--all", action="store_true", help="score all nine datasets and print the table")
    uni.add_argument("--data-roots-from", help="YAML config whose data.unibench_roots maps dataset -> folder")
    uni.add_argument("--results-dir", help="folder of <Dataset>-openset / <Dataset>-sentiment files")
    uni.add_argument("--partial", action="store_true", help="with --all: table of the datasets that can be scored")
    uni.add_argument(
        "--protocol",
        choices=["selected", "paper"],
        default="selected",
        help="selected: one checkpoint's files (default); paper: per dataset the best of --epochs (official "
        "evaluation.py, test-set selection) beside one common epoch",
    )
    uni.add_argument("--epochs", help="--protocol paper: epochs to score, e.g. 30-60:5 (the official list)")
    uni.add_argument(
        "--val-scores",
        help="--protocol paper: JSON epoch -> validation score, or the run's metrics.jsonl (picks the common epoch)",
    )
    uni.add_argument(
        "--n-resamples", type=int, default=1000, help="bootstrap resamples for the intervals (--all: 0 = none)"
    )
    uni.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    wheel_options(uni)
    uni.set_defaults(func=cmd_unibench)

    run = commands.add_parser(
        "run",
        help="infer.py outputs -> OV-label extraction -> MER-UniBench table (and EW scores)",
        description=RUN_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("--results-dir", required=True, help="folder of infer.py answer files")
    run.add_argument(
        "--extractor",
        choices=["parser", "lexicon", "llm"],
        help="OV-label extractor (default: eval.extractor of the run's config, else parser)",
    )
    run.add_argument(
        "--llm", help="extractor LLM folder (default: eval.extractor_llm, else models/Qwen2.5-7B-Instruct)"
    )
    run.add_argument("--llm-batch-size", type=int, default=8, help="prompts per LLM call (official 8)")
    run.add_argument("--llm-max-new-tokens", type=int, default=512, help="official 512")
    run.add_argument(
        "--official-sampling", action="store_true", help="LLM: official T 0.7 / top-p 0.8 sampling (default greedy)"
    )
    run.add_argument("--seed", type=int, default=0, help="LLM sampling seed (--protocol paper: also the bootstrap's)")
    run.add_argument("--backend", default="auto", choices=["auto", "transformers", "vllm"], help="LLM backend")
    run.add_argument("--config", help="YAML config: eval.wheel_dir / data.root locate the wheel")
    run.add_argument("--data-roots-from", help="YAML config with data.unibench_roots (for files without .meta.json)")
    run.add_argument("--out-dir", help="derived files and the table (default <results-dir>/eval-<extractor>)")
    run.add_argument("--cache-dir", help="extraction cache (default <results-dir>/.extract-cache)")
    run.add_argument("--partial", action="store_true", help="score what can be scored, list the rest")
    run.add_argument(
        "--protocol",
        choices=["selected", "paper"],
        default="selected",
        help="selected: the answers of one checkpoint (default); paper: --results-dir holds one answer folder per "
        "epoch (<...><epoch>/, e.g. epoch_0030/), each is scored, then per dataset the best epoch beside one common",
    )
    run.add_argument("--epochs", help="--protocol paper: epochs to score, e.g. 30-60:5 (the official list)")
    run.add_argument(
        "--val-scores",
        help="--protocol paper: JSON epoch -> validation score, or the run's metrics.jsonl (picks the common epoch)",
    )
    run.add_argument("--n-resamples", type=int, default=1000, help="--protocol paper: bootstrap resamples")
    wheel_options(run)
    run.set_defaults(func=cmd_run)

    add_study_commands(commands, wheel_options)  # compare, ablation, submission
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv  # accepted before or after the subcommand
    parser = build_parser()
    parser.add_argument("--debug", action="store_true", help="on a failure, print the traceback too")
    args = parser.parse_args([a for a in argv if a != "--debug"])
    try:
        return args.func(args)
    except (DataError, WheelError, ConfigError, ValueError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        if debug:
            traceback.print_exc()
        return 2
    except Exception as err:  # anything else (a full disk, a broken file): one line; the traceback on --debug
        from affectgpt.user_errors import report

        report(err, None, debug)
        return 2


if __name__ == "__main__":
    sys.exit(main())

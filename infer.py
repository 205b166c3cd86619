"""Generate emotion descriptions or OV-label sentences with a trained (or imported official) checkpoint.

  python infer.py --ckpt CKPT_DIR --split val                      # the run's validation samples
  python infer.py --ckpt CKPT_DIR --split test                     # every MER-UniBench set in data.unibench_roots
  python infer.py --ckpt CKPT_DIR --dataset OVMERDPlus [--data-root DIR] [--question description]
  python infer.py --ckpt CKPT_DIR --video clip.mp4 [--audio clip.wav] [--face faces.npy] [--subtitle "..."]
  python infer.py --ckpt CKPT_DIR --image photo.jpg                 # face_or_frame=image: one still image

Questions (--question): ovlabel (default), description, sentiment, onehot, onehot-candidates (the dataset's
label set: MER2023, MER2024, MELD, IEMOCAPFour), valence (the dataset's range: CMUMOSI, CMUMOSEI, SIMS,
SIMSv2) -- the official texts -- or any question text.

Results: one `name,response` file per dataset (JSONL, or CSV with --out X.csv) plus X.meta.json, by
default under results/<run>/<checkpoint>/<dataset>.jsonl; `python evaluate.py run --results-dir DIR`
scores them. Re-running the same command skips the names already written (resume after a stop).
Decoding is greedy by default (reproducible); --official-sampling gives the official settings
(sampling, temperature 1, top-p 0.9, 1200 new tokens), seeded by --seed.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", required=True, help="checkpoint folder (or a training run folder: its best checkpoint)")
    what = p.add_argument_group("what to answer")
    what.add_argument("--split", choices=["val", "test"], help="val: the run's validation records; test: MER-UniBench")
    what.add_argument("--dataset", help="dataset name(s), comma-separated: a MER-UniBench set or a MER2025 label set")
    what.add_argument(
        "--data-root", help="the dataset's folder (default: data.unibench_roots / data.root of the config)"
    )
    what.add_argument("--video", help="single-clip mode: answer for this video and print it")
    what.add_argument("--audio", help="single-clip mode: audio file (default: the video's sound track)")
    what.add_argument("--face", help="single-clip mode: face crops .npy (default: use video frames)")
    what.add_argument("--subtitle", default="", help="single-clip mode: the subtitle text")
    what.add_argument("--image", help="single-image mode (face_or_frame=image): answer for this image and print it")
    what.add_argument(
        "--question",
        default="ovlabel",
        help="ovlabel (default), description, sentiment, onehot, onehot-candidates, valence, or any text",
    )
    gen = p.add_argument_group("generation")
    gen.add_argument(
        "--batch-size", type=int, help="default: train.val_batch_size for --split val, else eval.batch_size"
    )
    gen.add_argument(
        "--max-new-tokens", type=int, help="default: train.val_max_new_tokens for --split val, else eval.max_new_tokens"
    )
    mode = gen.add_mutually_exclusive_group()
    mode.add_argument("--greedy", action="store_true", help="greedy decoding (the default)")
    mode.add_argument("--sample", action="store_true", help="sample with --temperature / --top-p")
    mode.add_argument(
        "--official-sampling",
        action="store_true",
        help="the official settings: sampling, temperature 1.0, top-p 0.9, 1200 new tokens",
    )
    gen.add_argument("--temperature", type=float, help="sampling temperature (implies --sample)")
    gen.add_argument("--top-p", type=float, help="nucleus sampling mass (implies --sample)")
    gen.add_argument("--seed", type=int, help="sampling seed (default: train.seed of the config)")
    out = p.add_argument_group("output")
    out.add_argument("--out", help="results file (.jsonl or .csv) for a single dataset")
    out.add_argument("--out-dir", help="folder for <dataset>.jsonl files (default results/<run>/<checkpoint>/)")
    abl = p.add_argument_group("modality ablation (affectgpt/infer/ablation.py; results go to <out-dir>-<variant>)")
    abl.add_argument("--drop", help="zero audio|face|frame features or empty the text (subtitle); comma-separated")
    abl.add_argument("--shuffle-media", action="store_true", help="each sample gets another's media (seeded)")
    out.add_argument("--official-npz", action="store_true", help="also write the official name2reason .npz")
    out.add_argument(
        "--submission",
        help="also write the MER2025 OV-track submission <anything>-openset.npz: labels read from the answers by the "
        "parser extractor (the ovlabel answer sentence), validated against the candidate list",
    )
    out.add_argument(
        "--candidates", help="--submission: the candidate list (default <data root>/track_all_candidates.csv)"
    )
    model = p.add_argument_group("model")
    model.add_argument("--llm", help="local LLM folder (overrides model.llm of the checkpoint config)")
    model.add_argument("--clip", help="local CLIP folder (overrides model.clip)")
    model.add_argument("--hubert", help="local HuBERT folder (overrides model.hubert)")
    model.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", help="section.key=value config overrides, e.g. data.num_workers=4")
    return p


def settings_from(args: argparse.Namespace, cfg, split: str | None):
    from affectgpt.infer.generate import GenerationSettings

    val = split == "val"
    settings = GenerationSettings(
        batch_size=args.batch_size or (cfg.train.val_batch_size if val else cfg.eval.batch_size),
        max_new_tokens=args.max_new_tokens or (cfg.train.val_max_new_tokens if val else cfg.eval.max_new_tokens),
        greedy=True if val else cfg.eval.greedy,
        temperature=cfg.eval.temperature,
        top_p=cfg.eval.top_p,
        seed=cfg.train.seed if args.seed is None else args.seed,
    )
    if args.official_sampling:
        settings.greedy, settings.temperature, settings.top_p = False, 1.0, 0.9
        settings.max_new_tokens = args.max_new_tokens or 1200
    if args.sample or args.temperature is not None or args.top_p is not None:
        settings.greedy = False
    if args.greedy:
        settings.greedy = True
    if args.temperature is not None:
        settings.temperature = args.temperature
    if args.top_p is not None:
        settings.top_p = args.top_p
    if settings.batch_size < 1 or settings.max_new_tokens < 1:
        raise ValueError("--batch-size and --max-new-tokens must be >= 1")
    return settings


def run_single_clip(args, cfg, ckpt, question, settings) -> int:
    from affectgpt.data.modes import get_mode
    from affectgpt.infer.clip import answer_clip, clip_record, image_record
    from affectgpt.infer.runner import frame_fallback, load_model
    from affectgpt.model.device import autocast_for, pick_device

    cfg.data.feature_cache = ""  # a single clip is never in the cache: encode it on the fly
    if args.image:
        if args.audio or args.face or args.subtitle:
            raise ValueError("--image answers for the image alone: its prompt holds no audio, faces or subtitle")
        record = image_record(args.image)
        if cfg.model.face_or_frame != "image":  # as official: image_llama_proj gets no gradient in video training
            print(
                f"warning: this checkpoint was trained with face_or_frame={cfg.model.face_or_frame}; its image "
                "projection (image_llama_proj) was never trained, so image answers are not meaningful",
                file=sys.stderr,
            )
        cfg.model.face_or_frame = "image"
    else:
        if "image" in get_mode(cfg.model.face_or_frame).streams:
            raise ValueError("face_or_frame=image answers for a still image: use --image FILE, not --video")
        record = clip_record(args.video, args.audio, args.face, args.subtitle)
        if not args.face and frame_fallback(cfg):
            print(f"no --face given: reading video frames ({cfg.model.face_or_frame})", file=sys.stderr)
    device = pick_device(args.device)
    model, tokenizer = load_model(cfg, ckpt, device)
    print(
        answer_clip(model, tokenizer, cfg, record, question, settings, autocast_for(cfg.train.mixed_precision, device))
    )
    return 0


def run_datasets(args, cfg, ckpt, settings) -> int:
    from affectgpt.cache import build_cache
    from affectgpt.data.records import SkipLog
    from affectgpt.data.sources import VAL, select_record_sets
    from affectgpt.infer.generate import resolve_question
    from affectgpt.infer.runner import default_out_dir, load_model
    from affectgpt.model.device import autocast_for, pick_device
    from affectgpt.signals import StopFlag

    read_skips = SkipLog()
    datasets = [d.strip() for d in (args.dataset or "").split(",") if d.strip()]
    sets = select_record_sets(cfg.data, args.split, datasets, args.data_root, read_skips)
    # per dataset: onehot-candidates / valence state its label set / range (checked before the model loads)
    questions = [resolve_question(args.question, cfg.data.val_dataset if rs.label == VAL else rs.label) for rs in sets]
    if args.out and len(sets) > 1:
        raise ValueError(f"--out names one file but {len(sets)} datasets are inferred; use --out-dir")
    if args.submission:
        _check_submission(args, sets, questions)
    out_dir = Path(args.out_dir) if args.out_dir else default_out_dir(cfg, ckpt)
    if args.ablation.active:
        out_dir = out_dir.with_name(f"{out_dir.name}-{args.ablation.label}")
        if args.shuffle_media:
            cfg.data.feature_cache = ""  # the cache is keyed by sample name: decode the donor's media files
    if cfg.data.feature_cache:  # encode whatever of these records is not cached yet (fingerprint-checked)
        build_cache(cfg, [record for rs in sets for record in rs.records])
    device = pick_device(args.device)
    model, tokenizer = load_model(cfg, ckpt, device)
    autocast = autocast_for(cfg.train.mixed_precision, device)
    exit_code = 0
    stop = StopFlag("finishing the current batch; the answers written so far are kept")  # twice: at once
    stop.install()
    try:
        for rs, question in zip(sets, questions):
            code = _infer_one(args, cfg, ckpt, question, settings, rs, out_dir, model, tokenizer, autocast, stop)
            if code == 130:
                return code
            exit_code = max(exit_code, code)
    finally:
        stop.restore()
    if read_skips.total:
        print(f"not inferred (unreadable when listing the dataset): {read_skips.summary()}", file=sys.stderr)
        exit_code = 1
    return exit_code


def _infer_one(args, cfg, ckpt, question, settings, rs, out_dir, model, tokenizer, autocast, stop) -> int:
    """Answer one dataset into its results file; 0 done, 1 some samples failed, 130 interrupted."""
    from affectgpt.infer.generate import run_inference
    from affectgpt.infer.outputs import ResultWriter, write_official_npz
    from affectgpt.infer.runner import absolute_config

    path = Path(args.out) if args.out else out_dir / f"{rs.label}.jsonl"
    meta = {
        "dataset": rs.label,
        "task": rs.task,
        "data_root": str(Path(rs.root).resolve()),
        "split": args.split,
        "checkpoint": str(ckpt),
        "question": question,
        "generation": {k: v for k, v in settings.to_dict().items() if k != "batch_size"},
        "batch_size": settings.batch_size,
        "n_records": len(rs.records),
        "config": absolute_config(cfg),
    }
    if args.ablation.active:  # absent for the full model: files written before ablations existed still resume
        meta["ablation"] = args.ablation.to_dict()
    writer = ResultWriter(path, meta)
    print(f"{rs.label}: {len(rs.records)} samples -> {path}", flush=True)
    try:
        report = run_inference(
            model,
            tokenizer,
            cfg,
            rs.records,
            writer,
            question,
            settings,
            autocast=autocast,
            progress=not args.no_progress,
            should_stop=lambda: stop.requested,
            ablation=args.ablation if args.ablation.active else None,
        )
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once (whole batches already written are kept)
        report = None
    if report is None or report.stopped:
        print(
            f"\ninterrupted: {len(writer.done)} of {len(rs.records)} answers are in {path}; "
            "re-run the same command to finish the rest",
            file=sys.stderr,
        )
        return 130
    print(
        f"{rs.label}: {report.already_done} already written, {len(report.generated)} generated, "
        f"{len(report.failed)} failed",
        flush=True,
    )
    if args.official_npz:
        print(f"wrote {write_official_npz(path)}")
    if args.submission and not report.failed:
        _write_submission(args, rs, writer.done)
    if report.failed:
        print(
            f"{rs.label}: could not answer {len(report.failed)} sample(s) ({report.skips.summary()}): "
            f"{', '.join(report.failed[:20])}; a re-run retries them"
            + ("; the submission is written once every candidate is answered" if args.submission else ""),
            file=sys.stderr,
        )
        return 1
    return 0


def _submission_candidates(args, rs) -> Path:
    return Path(args.candidates) if args.candidates else Path(rs.root) / "track_all_candidates.csv"


def _check_submission(args, sets, questions) -> None:
    """Before the model loads: one dataset, the ovlabel question (what the parser reads), a candidate list."""
    from affectgpt.infer.generate import resolve_question

    if len(sets) != 1:
        raise ValueError(f"--submission covers one dataset's candidate list, but {len(sets)} datasets are inferred")
    if questions[0] != resolve_question("ovlabel"):
        raise ValueError(
            "--submission reads labels with the parser, which needs the ovlabel answer sentence (--question ovlabel); "
            "for other answers run `evaluate.py run --extractor llm`, then `evaluate.py submission`"
        )
    if not args.submission.endswith("-openset.npz"):
        raise ValueError(f"--submission {args.submission}: a submission file is named <anything>-openset.npz")
    if not _submission_candidates(args, sets[0]).is_file():
        raise ValueError(
            f"--submission: candidate list {_submission_candidates(args, sets[0])} not found (--candidates)"
        )


def submission_labels(responses: dict[str, str]) -> dict[str, list[str]]:
    """name -> the labels of the answer's "emotional state is ..." sentence (the parser extractor)."""
    from affectgpt.labels.extract import LabelExtractor

    return {name: e.labels for name, e in LabelExtractor("parser").extract(responses).items()}


def _write_submission(args, rs, responses: dict[str, str]) -> None:
    from affectgpt.labels.submission import write_submission

    labels = submission_labels(responses)
    candidates = _submission_candidates(args, rs)
    out = write_submission(args.submission, labels, candidates)
    empty = sum(1 for v in labels.values() if not v)
    print(f"wrote {out}: {len(labels)} names ({empty} with no label), validated against {candidates}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    parser.add_argument("--debug", action="store_true", help="on a failure, print the traceback too")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from affectgpt.config import ConfigError
    from affectgpt.data.records import DataError
    from affectgpt.infer.ablation import Ablation
    from affectgpt.infer.generate import resolve_question
    from affectgpt.infer.runner import checkpoint_config, resolve_checkpoint
    from affectgpt.model.checkpoint import CheckpointError

    try:
        if args.video and args.image:
            raise ValueError("--video and --image are two single-input modes: give one")
        if (args.video or args.image) and (args.split or args.dataset):
            raise ValueError("--video / --image (single input) cannot be combined with --split / --dataset")
        drops = tuple(d.strip() for d in (args.drop or "").split(",") if d.strip())
        args.ablation = Ablation(drops, args.shuffle_media, 0 if args.seed is None else args.seed)
        if args.ablation.active and (args.video or args.image):
            raise ValueError("--drop / --shuffle-media apply to dataset runs (--split / --dataset)")
        ckpt = resolve_checkpoint(args.ckpt)
        cfg = checkpoint_config(ckpt, args.overrides, args.llm, args.clip, args.hubert)
        settings = settings_from(args, cfg, args.split)
        if args.video or args.image:
            return run_single_clip(args, cfg, ckpt, resolve_question(args.question), settings)
        return run_datasets(args, cfg, ckpt, settings)
    except (CheckpointError, ConfigError, DataError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        if args.debug:
            traceback.print_exc()
        return 2
    except Exception as err:  # anything else (a full disk, a broken file): one line; the traceback on --debug
        from affectgpt.user_errors import report

        report(err, None, args.debug)
        return 2


if __name__ == "__main__":
    sys.exit(main())

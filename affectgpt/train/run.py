"""What every training stage shares: the run folder, data, feature cache, accelerate state, validation, checkpoints.

`Run` is the base of the SFT `Trainer` (train/loop.py) and of the RL stage: one implementation of the parts whose
correctness is subtle (resume discovery and bit-exact restore, atomic checkpoints with one manifest, best/last
pointers and rotation, the per-epoch EW validation and its metrics.jsonl row, graceful stops), so every stage gets
them the same way. A stage adds its own model/optimiser setup and its steps.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import math
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import broadcast_object_list

from affectgpt.cache import ensure_cache
from affectgpt.config import Config, format_config
from affectgpt.data.records import SkipLog
from affectgpt.data.sources import training_records
from affectgpt.data.synthetic import demo_world, ensure_demo_dataset
from affectgpt.files import append_jsonl, fsync_path
from affectgpt.metrics.wheel import resolve_wheel
from affectgpt.model.checkpoint import save_weights
from affectgpt.signals import StopFlag
from affectgpt.train import checkpoints as ckpt
from affectgpt.train import tracking
from affectgpt.train.distributed import is_zero3, make_accelerator
from affectgpt.train.guards import NonFiniteError, NonFiniteGuard, all_finite, check_resume_fits, stream_record
from affectgpt.train.lock import RunLock
from affectgpt.train.validate import PREDICTIONS_FILE, validate, write_predictions

logger = logging.getLogger("affectgpt.train")
SCORE_KEY = "val/avg-L1/f1"


@dataclass
class TrainerState:
    """Everything besides accelerate's state that a resume needs (saved as trainer.json)."""

    epoch: int = 0  # the epoch in progress (0-based); == epochs when the run is complete
    micro: int = 0  # stream position: micro-batches consumed since the start of the run
    global_step: int = 0  # optimizer steps done
    loss_sum: float = 0.0  # this epoch so far, summed over ranks: sum of token losses
    loss_tokens: float = 0.0  # ... and target tokens
    skipped: int = 0  # this epoch so far, summed over ranks: samples the collator dropped (bad media / text)
    best_score: float | None = None
    best_checkpoint: str | None = None
    completed: bool = False
    nonfinite_steps: int = 0  # steps skipped for a NaN/inf loss or gradient, whole run
    nonfinite_in_a_row: int = 0  # ... ending at the last step (train.max_nonfinite_steps of them stop the run)


class Run:
    """The shared machinery of a training stage (see the module docstring); subclasses set `self.model`,
    `self.trainable`, `self.tokenizer` and implement their steps."""

    def __init__(self, cfg: Config, state: TrainerState | None = None):
        self.cfg = cfg
        t = cfg.train
        self.run_dir = Path(t.output_dir) / t.run_name
        self.accelerator = make_accelerator(t, self.run_dir)
        acc = self.accelerator
        self.main = acc.is_main_process
        logging.basicConfig(
            level=logging.INFO if self.main else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
        )
        self.stop = StopFlag("saving a resumable state at the next step boundary")
        self.state = state if state is not None else TrainerState()
        self.read_skips = SkipLog()  # samples the readers dropped when listing the data
        self.skips = SkipLog()  # samples the training dataset dropped (reasons: main process; counts: every rank)
        self.guard = NonFiniteGuard(int(t.max_nonfinite_steps))
        self.lock = RunLock(self.run_dir)  # taken by the main process in _prepare_run_dir, released by release()

    def _prepare_run_dir(self) -> ckpt.Found | None:
        """Lock the run folder, find what to resume; an error on the main process is raised on every rank."""
        acc = self.accelerator
        found, error = None, None
        if self.main:
            try:
                self.lock.acquire()  # first: a second training must not clear or resume this folder
                atexit.register(self.lock.release)
                found = self._resolve_run_dir()
            except Exception as err:
                error = err
        box = [found, None if error is None else f"{type(error).__name__}: {error}"]
        broadcast_object_list(box, from_process=0)
        if error is not None:
            raise error
        if box[1] is not None:
            raise RuntimeError(f"the main process failed: {box[1]}")
        acc.wait_for_everyone()
        return box[0]

    def release(self) -> None:
        """End of the run (also on errors): free the run folder for the next training."""
        self.lock.release()

    def _resolve_run_dir(self) -> ckpt.Found | None:
        """Main process: what to resume (or clear), the demo data, config.yaml."""
        cfg = self.cfg
        found = ckpt.resolve_resume(self.run_dir, cfg.train.resume)
        if found is None and cfg.train.resume in ckpt.NEVER_RESUME and ckpt.checkpoint_dirs(self.run_dir):
            logger.warning("train.resume=never: clearing the previous run in %s", self.run_dir)
            ckpt.clear_run(self.run_dir)
        elif found is None:  # fresh start (broken checkpoints, if any, are kept for inspection)
            for name in (tracking.METRICS_FILE, tracking.TRAIN_LOG_FILE):
                (self.run_dir / name).unlink(missing_ok=True)
        world = demo_world(cfg.data.root)
        if world is not None:
            ensure_demo_dataset(cfg.data.root, **world)
        cfg.save(self.run_dir / "config.yaml")
        print(format_config(cfg), flush=True)
        return found

    def load_data(self) -> None:
        """Records (train / val as data/sources.py selects them), the wheel, the feature cache."""
        self.wheel = resolve_wheel(self.cfg)
        self.train_records, self.val_records = training_records(self.cfg.data, self.read_skips)
        if self.main and self.read_skips.total:
            print(f"data: {self.read_skips.summary()} (before training; see the warnings above)", flush=True)
        self.feature_cache = self._feature_cache()

    def _feature_cache(self):
        """data.feature_cache: encode train + val media once (ranks share the work), then read features."""
        if not self.cfg.data.feature_cache:
            return None
        acc = self.accelerator
        return ensure_cache(
            self.cfg,
            self.train_records + self.val_records,
            rank=acc.process_index,
            world=acc.num_processes,
            barrier=acc.wait_for_everyone,
            progress=self.main,
        )

    def _register_state_hooks(self) -> None:
        """Full-state checkpoints hold the trainable weights only (never the frozen 7B LLM / encoders)."""
        names = {n for n, p in self.model.named_parameters() if p.requires_grad}

        def keep_trainable(models: list, weights: list, output_dir: str) -> None:
            for i, state in enumerate(weights):
                weights[i] = {k: v for k, v in state.items() if k in names}

        self.accelerator.register_save_state_pre_hook(keep_trainable)

    def _load_kwargs(self) -> dict[str, Any]:
        if self.accelerator.state.deepspeed_plugin is not None:
            return {"load_module_strict": False}
        return {"strict": False}

    def resume(self, found: ckpt.Found) -> None:
        """Restore accelerate's state and the trainer state of `found`; drop what the lost tail had logged."""
        if getattr(self, "stream", None) is not None:  # before any state is loaded: a mismatch is one clear line
            check_resume_fits(found.state.get("stream"), stream_record(self.stream), str(found.path))
        logger.info("resuming from %s", found.path)
        self.accelerator.load_state(str(found.path / ckpt.STATE_DIR), **self._load_kwargs())
        fields = type(self.state).__dataclass_fields__
        self.state = type(self.state)(**{k: v for k, v in found.state.items() if k in fields})
        if self.main:
            tracking.truncate_jsonl(self.run_dir / tracking.METRICS_FILE, "epoch", self.state.epoch)
            tracking.truncate_jsonl(self.run_dir / tracking.TRAIN_LOG_FILE, "step", self.state.global_step)

    def init_trackers(self) -> None:
        if self.accelerator.log_with:
            kwargs = tracking.tracker_kwargs(self.cfg, self.run_dir)
            self.accelerator.init_trackers("affectgpt", config=tracking.flat_config(self.cfg), init_kwargs=kwargs)

    def nonfinite_step(self, finite_loss: bool) -> bool:
        """At an optimizer-step boundary (gradients complete): True when this step must be skipped because the loss
        or a gradient is NaN/inf on any rank (counted; `train.max_nonfinite_steps` in a row raise NonFiniteError).

        Gradients are checked here unless an fp16 GradScaler (which skips overflowing steps itself) or DeepSpeed
        (which steps inside backward, so nothing can be skipped here: only counted and stopped) owns them."""
        acc = self.accelerator
        finite = finite_loss
        if finite and acc.scaler is None and acc.state.deepspeed_plugin is None:
            finite = all_finite(p.grad for p in self.trainable)
        flag = torch.tensor([0.0 if finite else 1.0], device=acc.device)
        all_ok = float(acc.reduce(flag, reduction="sum")[0]) == 0.0
        skip = self.guard.update(self.state, all_ok, self.state.global_step + 1)
        if skip and self.main:
            logger.warning(
                "step %d: non-finite loss or gradient, update skipped (%d in a row, limit %d)",
                self.state.global_step + 1,
                self.state.nonfinite_in_a_row,
                self.guard.limit,
            )
        return skip

    def _check_finite(self, name: str) -> None:
        """NonFiniteError on every rank (agreed) before checkpoint `name` would be written from NaN/inf weights."""
        bad = [n for n, p in self.model.named_parameters() if p.requires_grad and not bool(torch.isfinite(p).all())]
        flag = torch.tensor([float(len(bad))], device=self.accelerator.device)
        if float(self.accelerator.reduce(flag, reduction="sum")[0]) > 0:
            first = f" (first: {bad[0]})" if bad else ""
            raise NonFiniteError(
                f"refusing to save {self.run_dir / name}: trainable weights hold NaN/inf{first}; "
                f"the previous checkpoint is kept"
            )

    def _stop_agreed(self) -> bool:
        flag = torch.tensor([float(self.stop.requested)], device=self.accelerator.device)
        return bool(self.accelerator.reduce(flag, reduction="sum")[0] > 0)

    # --- validation and saving ---------------------------------------------------------------------
    def close_epoch(self, epoch: int, train_record: dict[str, Any]) -> None:
        """Validate, write the epoch's metrics.jsonl row (`train_record` + val/*), choose best, save the checkpoint."""
        acc, st = self.accelerator, self.state
        scores, responses, parsed = validate(
            acc, acc.unwrap_model(self.model), self.val_records, self.cfg, self.tokenizer, self.wheel
        )
        record = {
            "epoch": epoch + 1,
            "step": st.global_step,
            **train_record,
            **{f"val/{k}": v for k, v in scores.items()},
        }
        score = float(record[SCORE_KEY])
        name = ckpt.epoch_name(epoch + 1)
        if math.isfinite(score) and (st.best_score is None or score > st.best_score):  # NaN is never best
            st.best_score, st.best_checkpoint = score, name
        st.epoch = epoch + 1
        st.completed = st.epoch >= int(self.cfg.train.epochs)
        if self.main:
            append_jsonl(self.run_dir / tracking.METRICS_FILE, record)
            print(tracking.epoch_summary(record), flush=True)
        if acc.log_with:
            acc.log({k: v for k, v in record.items() if isinstance(v, (int, float))}, step=st.global_step)
        self.save(kind="epoch", predictions=(responses, parsed), record=record)

    def _gathered(self):
        """Under ZeRO-3 the trainable weights are sharded: gather them (on every rank) to save them."""
        if not is_zero3(self.accelerator):
            return contextlib.nullcontext()
        import deepspeed

        return deepspeed.zero.GatheredParameters(self.trainable, modifier_rank=None)

    def _write_checkpoint(self, name: str, tmp: Path, kind: str, predictions: tuple | None, record: dict | None):
        """Every file of checkpoint `name` into `tmp`, then commit (manifest last, rename): the final folder."""
        acc, st = self.accelerator, self.state
        if self.main:
            ckpt.begin(self.run_dir, name)  # fresh: a save killed earlier left a stale one
        acc.wait_for_everyone()
        with self._gathered():
            self._check_finite(name)
            if self.main:
                save_weights(acc.unwrap_model(self.model), self.cfg, tmp)
        acc.wait_for_everyone()
        kwargs = {"exclude_frozen_parameters": True} if acc.state.deepspeed_plugin is not None else {}
        acc.save_state(str(tmp / ckpt.STATE_DIR), **kwargs)
        acc.wait_for_everyone()
        final = self.run_dir / name
        if self.main:
            fsync_path(self.run_dir / tracking.TRAIN_LOG_FILE)  # the per-step log is durable up to this checkpoint
            if predictions is not None:
                responses, parsed = predictions
                write_predictions(tmp / PREDICTIONS_FILE, responses, parsed, [r.name for r in self.val_records])
            stream = stream_record(self.stream) if getattr(self, "stream", None) is not None else None
            final = ckpt.commit(tmp, {**asdict(st), "kind": kind, "metrics": record, "stream": stream})
        return final

    def _save_failed(self, err: Exception, tmp: Path) -> Exception:
        """The error to raise for a failed save: non-finite weights as they are, a write failure as one line
        (cause, file, the checkpoint still good); the partial folder is removed (it frees the space it took)."""
        if isinstance(err, NonFiniteError):
            failure: Exception = err
        else:
            last = self.run_dir / "last.json"
            previous = json.loads(last.read_text(encoding="utf-8"))["checkpoint"] if last.is_file() else None
            failure = ckpt.write_failure(err, tmp, previous)
        if self.main:
            shutil.rmtree(tmp, ignore_errors=True)
        return failure

    def save(self, kind: str, predictions: tuple | None = None, record: dict | None = None) -> Path:
        """Atomic checkpoint: weights (infer.py format) + accelerate state + trainer.json, manifest last."""
        acc, st = self.accelerator, self.state
        name = ckpt.epoch_name(st.epoch) if kind == "epoch" else ckpt.interrupt_name(st.global_step)
        tmp = ckpt.tmp_dir(self.run_dir, name)
        try:
            final = self._write_checkpoint(name, tmp, kind, predictions, record)
        except Exception as err:  # nothing was renamed into place: the previous checkpoint and pointers are intact
            raise self._save_failed(err, tmp) from err
        if self.main:
            info = {"epoch": st.epoch, "step": st.global_step}
            ckpt.point(self.run_dir, "last", final, info)
            if st.best_checkpoint:
                best = self.run_dir / st.best_checkpoint
                ckpt.point(
                    self.run_dir,
                    "best",
                    best,
                    {SCORE_KEY: st.best_score, "epoch": int(st.best_checkpoint.split("_")[1])},
                )
            protect = {final.name, st.best_checkpoint or ""}
            for path in ckpt.rotate(self.run_dir, int(self.cfg.train.keep_last), protect):
                logger.info("removed old checkpoint %s", path.name)
            logger.info("saved %s", final)
        acc.wait_for_everyone()
        return final

    # --- end of run ----------------------------------------------------------------------------
    def finish(self) -> Path | None:
        acc = self.accelerator
        best = self.run_dir / self.state.best_checkpoint if self.state.best_checkpoint else None
        if self.main:
            tracking.plot_curves(self.run_dir)
            if best is not None:
                print(f"\nbest checkpoint: {best} ({SCORE_KEY} = {self.state.best_score:.4f})", flush=True)
                print("next:", flush=True)
                results = Path("results") / self.cfg.train.run_name / best.name
                print(
                    f"  python infer.py --ckpt {best} --split val          # validation answers -> {results}",
                    flush=True,
                )
                print(f"  python evaluate.py run --results-dir {results}     # the same EW score as above", flush=True)
                if self.cfg.data.unibench_roots:
                    print(
                        f"  python infer.py --ckpt {best} --split test         # the MER-UniBench test sets", flush=True
                    )
        if acc.log_with:
            acc.end_training()
        return best

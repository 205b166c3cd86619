"""The accelerate training loop (DDP / DeepSpeed / single process) and its per-epoch EW validation.

Entry point: `affectgpt.train.loop.train(cfg)`; `train.py` is the CLI over it.
"""

"""Build models whole (unpartitioned) while accelerate has a DeepSpeed ZeRO-3 config registered.

Why: under `accelerate launch` with ZeRO-3, accelerate registers its DeepSpeed config with
transformers, which then wraps *every* model construction in `deepspeed.zero.Init` — even with
`zero3_init_flag: false` — leaving each rank an empty shard of every weight. That breaks whatever
runs a model outside the DeepSpeed engine: the frozen encoders building the feature cache, and the
tiny LLM's output layer being re-initialised after construction. Built whole, the models are
partitioned by DeepSpeed when the engine is created, as under ZeRO-2. A real LLM folder is still
loaded partitioned when zero3 init is asked for (`zero3_init_flag: true`): it saves host memory
when loading a 7B model on many ranks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from transformers.integrations import deepspeed as hf_deepspeed


def zero3_init_requested() -> bool:
    """accelerate's zero3_init_flag, as `accelerate launch` passes it to the processes."""
    return os.environ.get("ACCELERATE_DEEPSPEED_ZERO3_INIT", "false").lower() in ("1", "true")


@contextmanager
def built_whole(enabled: bool = True) -> Iterator[None]:
    """Inside: transformers sees no DeepSpeed config, so models are built with full weights."""
    if not enabled or not hf_deepspeed.is_deepspeed_zero3_enabled():
        yield
        return
    registered = hf_deepspeed._hf_deepspeed_config_weak_ref  # restored as is: accelerate keeps the object alive
    hf_deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        hf_deepspeed._hf_deepspeed_config_weak_ref = registered

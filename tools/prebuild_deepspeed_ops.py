"""Build, once at set-up, the DeepSpeed C++ ops that the CPU runs would otherwise JIT-compile mid-test.

Why: on a CPU machine DeepSpeed compiles its shared-memory communication op (`deepspeed_shm_comm`) the first time
a ZeRO engine starts. That took ~1-6 minutes on a loaded 2-core machine and landed inside a timed test. Building it
here puts the cost in `make setup` and in the torch-extensions cache (``$TORCH_EXTENSIONS_DIR``, default
``~/.cache/torch_extensions``) that every later run loads in milliseconds. On CUDA machines the accelerator has no
such op and this script only says so. A failed build is reported and does not fail set-up: DeepSpeed itself would
hit the same compiler problem at run time and say so there.
"""

from __future__ import annotations

import os
import sys
import time


def main() -> int:
    os.environ.setdefault("DS_ACCELERATOR", "cpu" if not _has_cuda() else "cuda")
    try:
        import deepspeed.ops  # noqa: F401 - fills deepspeed.ops.__compatible_ops__
        from deepspeed.accelerator import get_accelerator
    except Exception as error:  # noqa: BLE001 - DeepSpeed is optional on a CPU laptop
        print(f"[setup] DeepSpeed not importable ({type(error).__name__}: {error}); skipping op prebuild")
        return 0
    import deepspeed

    builder = get_accelerator().create_op_builder("ShareMemCommBuilder")
    if builder is None or not deepspeed.ops.__compatible_ops__.get(builder.NAME, False):
        print(f"[setup] DeepSpeed accelerator {get_accelerator().device_name()!r}: no shared-memory op to prebuild")
        return 0
    start = time.perf_counter()
    try:
        builder.load(verbose=False)
    except Exception as error:  # noqa: BLE001 - report, the test or run that needs it fails with DeepSpeed's error
        print(f"[setup] WARNING: building DeepSpeed op {builder.NAME} failed: {error}", file=sys.stderr)
        return 0
    print(f"[setup] DeepSpeed op {builder.NAME} ready ({time.perf_counter() - start:.1f} s)")
    return 0


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    sys.exit(main())

"""`--nproc N`: run the same command as N processes on this machine, through torchrun."""

from __future__ import annotations

import argparse
import subprocess
import sys

from edgekit.core.errors import InvalidInputError


def add_nproc_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nproc", type=int, metavar="N", help="train on N processes of this "
                        "machine under DistributedDataParallel (gloo on CPU, nccl on CUDA): "
                        "a shortcut for `torchrun --standalone --nproc_per_node N -m edgekit "
                        "...`; --batch-size stays the global batch. Several machines: run "
                        "torchrun yourself with its --nnodes/--rdzv-endpoint flags")
    parser.add_argument("--sync-batchnorm", action="store_true", help="with several "
                        "processes: BatchNorm statistics over all of them (SyncBatchNorm)")


def wants_launch(args: argparse.Namespace) -> bool:
    """Whether this process should start torchrun rather than do the work itself."""
    from edgekit.training.distributed import launched

    if args.nproc is None or launched():
        return False
    if args.nproc < 1:
        raise InvalidInputError(f"--nproc must be >= 1, got {args.nproc}")
    return args.nproc > 1


def launch(args: argparse.Namespace) -> int:
    """Run this command again under torchrun, without --nproc; its exit code."""
    argv, skip = [], False
    for word in args.argv:
        if skip:
            skip = False
        elif word == "--nproc":
            skip = True
        elif not word.startswith("--nproc="):
            argv.append(word)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={args.nproc}", "-m", "edgekit", *argv]
    return subprocess.call(command)

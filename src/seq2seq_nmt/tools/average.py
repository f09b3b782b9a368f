"""Average the weights of checkpoints into one that translate.py loads:
``nmt-average RUN_DIR_OR_CKPT... [--best N | --last N] --output avg.ckpt``."""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from seq2seq_nmt.checkpoint import (
    AVERAGE_PARTS,
    CHECKPOINT_KEY,
    CheckpointError,
    check_compatible,
    load_checkpoint,
    save_atomically,
)

SCORE = "val/bleu"  # the score --best ranks by (higher is better), as ModelCheckpoint stored it
LAST = "last"  # ModelCheckpoint's name for its latest checkpoint, which has no score of its own

Checkpoints = list[tuple[Path, dict]]


def score(ckpt: dict) -> float | None:
    """The ``SCORE`` its ModelCheckpoint recorded when it wrote ``ckpt``."""
    for state in ckpt.get("callbacks", {}).values():
        if isinstance(state, dict) and state.get("monitor") == SCORE:
            return None if state.get("current_score") is None else float(state["current_score"])
    return None


def step(ckpt: dict) -> int:
    return int(ckpt.get("global_step", -1))


def run_of(ckpt: dict) -> str | None:
    """The identity of the run that wrote ``ckpt`` (None in checkpoints older than it)."""
    return ckpt[CHECKPOINT_KEY].get("run")


def collect(paths: Sequence[Path]) -> Checkpoints:
    """The checkpoints named, then those of each directory (``DIR/checkpoints/*.ckpt``, else
    ``DIR/*.ckpt``), where one per run and training step is kept (last.ckpt repeats a scored
    one): each one left out is named on standard error."""
    out: Checkpoints = []
    for path in paths:
        if not path.is_dir():
            out.append((path, load_checkpoint(path)))
            continue
        where = path / "checkpoints" if (path / "checkpoints").is_dir() else path
        files = sorted(where.glob("*.ckpt"), key=lambda p: (p.name.startswith(LAST), p.name))
        if not files:
            raise CheckpointError(f"no checkpoints (*.ckpt) in {where}")
        seen: dict[tuple, Path] = {}
        for file in files:
            ckpt = load_checkpoint(file)
            key = (run_of(ckpt), step(ckpt))
            if key in seen:
                print(f"left out {file}: step {key[1]} of the run of {seen[key]}", file=sys.stderr)
                continue
            seen[key] = file
            out.append((file, ckpt))
    return out


def check_one_run(ckpts: Checkpoints) -> None:
    """CheckpointError unless every checkpoint that records its run records the same one."""
    runs = {run_of(c): p for p, c in ckpts if run_of(c) is not None}
    if len(runs) > 1:
        (a, first), (b, second) = list(runs.items())[:2]
        raise CheckpointError(
            f"{second} and {first} come from different training runs ({b[:8]}, {a[:8]}); "
            "average checkpoints of one run (an ensemble combines runs: translate.py 'ckpt=[...]')"
        )


def select(ckpts: Checkpoints, best: int | None = None, last: int | None = None) -> Checkpoints:
    """The ``best`` highest-scoring (last.ckpt aside), the ``last`` newest, or all of them."""
    if best is not None:
        scored = [(p, c) for p, c in ckpts if not p.name.startswith(LAST) and score(c) is not None]
        if len(scored) < best:
            raise CheckpointError(f"--best {best}: only {len(scored)} checkpoints with a {SCORE}")
        return sorted(scored, key=lambda pc: -score(pc[1]))[:best]
    if last is not None:
        if len(ckpts) < last:
            raise CheckpointError(f"--last {last}: only {len(ckpts)} checkpoints")
        return sorted(ckpts, key=lambda pc: -step(pc[1]))[:last]
    return ckpts


def average(ckpts: Checkpoints) -> dict:
    """One checkpoint: the elementwise mean of the floating-point ``state_dict`` tensors (others
    from the first), with the first's ``nmt`` entry. CheckpointError when they do not match."""
    paths, dicts = [p for p, _ in ckpts], [c for _, c in ckpts]
    check_compatible(paths, dicts, AVERAGE_PARTS)
    check_one_run(ckpts)
    first = dicts[0]["state_dict"]
    for path, ckpt in ckpts[1:]:
        if ckpt["state_dict"].keys() != first.keys():
            raise CheckpointError(f"{path}: its weights differ in names from those of {paths[0]}")
    state = {
        k: (sum(c["state_dict"][k].double() for c in dicts) / len(dicts)).to(v.dtype)
        if v.is_floating_point()
        else v
        for k, v in first.items()
    }
    return {"state_dict": state, CHECKPOINT_KEY: dicts[0][CHECKPOINT_KEY],
            "averaged_from": [str(p) for p in paths]}  # fmt: skip


def _count(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def main(argv: Sequence[str] | None = None) -> None:
    """The command line; a bad or mismatched checkpoint gives one line and exit status 2."""
    parser = argparse.ArgumentParser(prog="nmt-average", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path, help="checkpoints and/or run directories")
    pick = parser.add_mutually_exclusive_group()
    pick.add_argument("--best", type=_count, metavar="N", help=f"the N with the highest {SCORE}")
    pick.add_argument("--last", type=_count, metavar="N", help="the N newest (by training step)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the averaged checkpoint")
    args = parser.parse_args(argv)
    try:
        chosen = select(collect(args.paths), args.best, args.last)
        averaged = average(chosen)
    except (CheckpointError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        save_atomically(averaged, args.output)
    except OSError as e:  # a full disk: the atomic save left no file under the output's name
        print(f"error: cannot write {args.output}: {e.strerror or e}", file=sys.stderr)
        raise SystemExit(2) from None
    for path, ckpt in chosen:
        value = "-" if score(ckpt) is None else f"{score(ckpt):.2f}"
        print(f"step {step(ckpt)}\t{SCORE} {value}\t{path}", file=sys.stderr)
    print(f"averaged {len(chosen)} checkpoints into {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()

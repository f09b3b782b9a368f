"""Would a whole compiled training step pay? The teacher-forced forward and loss through
``torch.compile`` for one fixed batch shape, against eager, on the same batch and weights.

    python bench/compile_probe.py [--steps 40] [--rounds 3] [OVERRIDE ...]

``model.compile=true`` compiles the decoder's per-token step; this probes the larger unit, the
whole forward over a batch (``teacher_forcing_ratio=1.0``, so that it is one graph per shape),
backward and optimizer step included in the time. It trains the most frequent batch shape of
the benchmark's first 200 batches again and again, so a compile that pays here is an upper
bound of what a run with a graph per shape (and the compile time of each) could gain. Prints the
compile time, each round's milliseconds a step and the ratio. OVERRIDEs are Hydra overrides on
top of the benchmark's config (e.g. ``model.bidirectional=true model.bridge=true``;
``trainer.accelerator=gpu`` on a GPU).
"""

import statistics
import time
from collections import Counter
from collections.abc import Callable
from itertools import islice

import torch
from benchlib import build_bench, describe_machine, device_of, rounds_parser, sync
from torch import nn


def main() -> None:
    args = rounds_parser(__doc__, 40, 3, "timed steps per way and round").parse_args()
    overrides = ["teacher_forcing_ratio=1.0", "trainer.precision=32-true", *args.overrides]
    cfg, datamodule, module = build_bench("compile-probe-", *overrides)
    device = device_of(cfg)
    net, criterion = module.net.to(device).train(), module.criterion
    optimizer = module.optimizer_factory(net.parameters())
    batches = {}  # the first batch of each (source, target input) shape
    shapes: Counter = Counter()
    for b in islice(datamodule.train_dataloader(), 200):
        shape = (tuple(b["src"].shape), tuple(b["tgt_in"].shape))
        batches.setdefault(shape, b)
        shapes[shape] += 1
    (shape, count), = shapes.most_common(1)  # fmt: skip
    batch = batches[shape]
    src, src_len, tgt_in, tgt_out = (
        batch[k].to(device) for k in ("src", "src_len", "tgt_in", "tgt_out")
    )

    def loss_of() -> torch.Tensor:
        logits, _ = net(src, src_len, tgt_in, 1.0)
        return criterion(logits.flatten(0, 1), tgt_out.flatten())

    def step(forward: Callable[[], torch.Tensor]) -> None:
        loss = forward()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        sync(device)

    def ms_per_step(forward: Callable[[], torch.Tensor]) -> float:
        for _ in range(args.warmup):
            step(forward)
        start = time.perf_counter()
        for _ in range(args.steps):
            step(forward)
        return (time.perf_counter() - start) / args.steps * 1e3

    compiled = torch.compile(loss_of, dynamic=False)
    start = time.perf_counter()
    step(compiled)
    compile_s = time.perf_counter() - start
    print(f"{describe_machine(cfg)}\noverrides: {' '.join(overrides)}")
    print(f"batch shape (source, target input) {shape}: {count} of the first 200 batches, "
          f"{len(shapes)} shapes in all; first compiled step (compiling) {compile_s:.1f} s")  # fmt: skip
    ratios = []
    for round_ in range(args.rounds):
        eager, fast = ms_per_step(loss_of), ms_per_step(compiled)
        ratios.append(eager / fast)
        print(f"round {round_ + 1}: eager {eager:.1f} ms, compiled {fast:.1f} ms a step, "
              f"compiled {ratios[-1]:.2f}x eager's speed")  # fmt: skip
    print(f"median: compiled {statistics.median(ratios):.2f}x eager's speed")


if __name__ == "__main__":
    main()

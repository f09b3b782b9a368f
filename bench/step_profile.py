"""Where a training step's time goes: torch.profiler over the bare loop of ``train_bench``.

    python bench/step_profile.py [--steps 30] [--rows 20] [OVERRIDE ...]

Builds the benchmark's data and model as ``train_bench.py`` does (OVERRIDEs are Hydra overrides
on top, e.g. ``model.bidirectional=true batch_size=128``), trains 10 unprofiled steps, then
profiles ``--steps`` steps of row (b), the bare loop (forward, loss, backward, clipping,
optimizer). Prints each kind of work's share of the CPU time (matrix products, the optimizer,
the loss, everything else), the rate the matrix products reach (GFLOP/s, against the core's
peak that ``precision_probe.py`` measures) and the ops that cost most. The matrix products'
share bounds what removing everything else could gain: 1 / share.
"""

import argparse

from benchlib import build_bench, describe_machine
from torch.profiler import ProfilerActivity, profile
from train_bench import bare_rate

KINDS = {
    "matrix products": ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::addmv"),
    "optimizer and clipping": ("aten::_fused_adam_", "aten::linalg_vector_norm", "aten::_foreach"),
    "loss (log-softmax, NLL)": ("aten::_log_softmax", "aten::nll_loss"),
}


def kind_of(op: str) -> str:
    for kind, prefixes in KINDS.items():
        if op.startswith(prefixes):
            return kind
    return "everything else"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30, help="profiled steps")
    parser.add_argument("--rows", type=int, default=20, help="ops listed")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of conf/train.yaml")
    args = parser.parse_args()
    cfg, datamodule, module = build_bench("step-profile-", *args.overrides)
    bare_rate(cfg, module, datamodule.train_dataloader(), steps=1, warmup=10)
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        rate = bare_rate(cfg, module, datamodule.train_dataloader(), args.steps, warmup=1)
    ops = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in ops)
    print(describe_machine(cfg))
    print(f"overrides: {' '.join(args.overrides) or '(none)'}; {rate.tokens_per_s:,.0f} target "
          f"tokens/s under the profiler; {total / 1e3 / (args.steps + 1):.1f} ms CPU per step\n")  # fmt: skip
    shares: dict[str, float] = {}
    for e in ops:
        shares[kind_of(e.key)] = shares.get(kind_of(e.key), 0.0) + e.self_cpu_time_total / total
    print("| kind | share of CPU time |\n|---|---:|")
    for kind, share in sorted(shares.items(), key=lambda kv: -kv[1]):
        print(f"| {kind} | {share:.1%} |")
    products = [e for e in ops if kind_of(e.key) == "matrix products"]
    flops, seconds = sum(e.flops for e in products), sum(e.self_cpu_time_total for e in products)
    print(f"\nmatrix products: {flops / 1e9 / (args.steps + 1):.2f} GFLOP a step at "
          f"{flops / seconds / 1e3:.0f} GFLOP/s (bench/precision_probe.py: this core's peak)")  # fmt: skip
    print(f"removing all but the matrix products: at most {1 / shares['matrix products']:.2f}x\n")
    print("| op | share | calls per step |\n|---|---:|---:|")
    for e in sorted(ops, key=lambda e: -e.self_cpu_time_total)[: args.rows]:
        calls = e.count / (args.steps + 1)
        print(f"| `{e.key}` | {e.self_cpu_time_total / total:.1%} | {calls:,.0f} |")


if __name__ == "__main__":
    main()

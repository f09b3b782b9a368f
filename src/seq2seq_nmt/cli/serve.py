"""``nmt-serve ckpt=PATH`` (or ``'models={fr-en: a.ckpt, de-en: b.ckpt}'``): the REST API and the
web page on http://127.0.0.1:8000 (``.[serve]``; docs/serving.md). A checkpoint that does not load
or a bad setting: one line on stderr, exit status 2. SIGTERM: requests in flight finish, exit 0."""

import signal
import sys

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from seq2seq_nmt.checkpoint import CheckpointError
from seq2seq_nmt.cli import CONFIG_PATH


def _exit_zero(signum, frame) -> None:
    """After uvicorn's graceful shutdown: a clean exit, not the signal's default death."""
    raise SystemExit(0)


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="serve")
def main(cfg: DictConfig) -> None:
    try:
        import uvicorn

        from seq2seq_nmt.serve.app import Limits, create_app
        from seq2seq_nmt.serve.models import load_models
    except ImportError as e:
        print(f"error: {e.name} is missing: pip install 'seq2seq-nmt[serve]'", file=sys.stderr)
        raise SystemExit(2) from None
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        models = load_models(cfg)
        app = create_app(
            models,
            Limits(**OmegaConf.to_container(cfg.limits)),
            cfg.batching.max_batch_size,
            cfg.batching.max_wait_ms,
            tuple(cfg.cors_origins),
        )
    except (CheckpointError, ValueError, TypeError, OSError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    names = ", ".join(models)
    print(f"serving {names} on http://{cfg.host}:{cfg.port}/ (Ctrl-C stops)", file=sys.stderr)
    # uvicorn lets requests in flight finish on SIGTERM or Ctrl-C, then raises the signal again
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_zero)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level=cfg.log_level)


if __name__ == "__main__":
    main()

"""Train a translation model: ``python train.py [group=option ...] [key=value ...]``."""

import sys

import hydra
from omegaconf import DictConfig

from seq2seq_nmt.data.download import CorpusError
from seq2seq_nmt.training import train


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    try:
        return train(cfg).get("val/bleu")
    except CorpusError as e:  # missing, undownloadable or inconsistent data: one line, exit 2
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()

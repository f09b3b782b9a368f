"""Train a translation model: ``python train.py [group=option ...] [key=value ...]``."""

import hydra
from omegaconf import DictConfig

from seq2seq_nmt.training import train


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    return train(cfg).get("val/bleu")


if __name__ == "__main__":
    main()

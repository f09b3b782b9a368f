"""Translate with a checkpoint: ``python translate.py ckpt=PATH text="..."`` (or input=FILE, stdin);
``ckpt=[A,B,...]`` decodes with the ensemble of several."""

import sys

import hydra
from omegaconf import DictConfig

from seq2seq_nmt.cli import run, take_text_arg

TEXT: str | None = None  # the text= argument, taken out of argv before Hydra parses it


@hydra.main(version_base="1.3", config_path="conf", config_name="translate")
def main(cfg: DictConfig) -> None:
    run(cfg, text=TEXT)


if __name__ == "__main__":
    sys.argv, TEXT = take_text_arg(sys.argv)
    main()

"""Translate with a checkpoint: ``python translate.py ckpt=PATH text="..."`` (or input=FILE, stdin);
``ckpt=[A,B,...]`` decodes with the ensemble of several."""

import sys

import hydra
from omegaconf import DictConfig

from seq2seq_nmt.cli import quote_text_arg, run


@hydra.main(version_base="1.3", config_path="conf", config_name="translate")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    sys.argv = [quote_text_arg(a) for a in sys.argv]
    main()

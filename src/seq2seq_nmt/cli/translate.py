"""``nmt-translate ckpt=PATH text="..."`` (or ``input=FILE``, standard input); ``ckpt=[A,B,...]``
decodes with the ensemble of several (also ``python translate.py`` in a checkout)."""

import sys

import hydra
from omegaconf import DictConfig

from seq2seq_nmt.cli import CONFIG_PATH
from seq2seq_nmt.translate.command import run, take_text_arg

TEXT: str | None = None  # the text= argument, taken out of argv before Hydra parses it


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="translate")
def _main(cfg: DictConfig) -> None:
    run(cfg, text=TEXT)


def main() -> None:
    global TEXT
    sys.argv, TEXT = take_text_arg(sys.argv)
    _main()


if __name__ == "__main__":
    main()

"""``python train.py ...`` in a checkout: the same command as ``nmt-train``."""

from seq2seq_nmt.cli.train import main

if __name__ == "__main__":
    main()

"""``python translate.py ...`` in a checkout: the same command as ``nmt-translate``."""

from seq2seq_nmt.cli.translate import main

if __name__ == "__main__":
    main()

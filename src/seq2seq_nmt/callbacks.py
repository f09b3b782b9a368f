"""Lightning callbacks of this project (the stock ones are configured in conf/callbacks/)."""

import numpy as np
import pytorch_lightning as pl
import torch


class StepSeed(pl.Callback):
    """Reseeds torch before every training batch from ``(seed, batch index across epochs)``.

    Teacher forcing and dropout then draw the same numbers at a given batch whether the run went
    straight through or was resumed from a checkpoint (Lightning saves no RNG state), and whatever
    validation, sanity checks or dataloader workers drew before it (fairseq seeds its steps so too).
    """

    def __init__(self, seed: int):
        self.seed = seed

    def on_train_batch_start(self, trainer: pl.Trainer, *_) -> None:
        step = trainer.fit_loop.total_batch_idx
        torch.manual_seed(
            int(np.random.SeedSequence([self.seed, step]).generate_state(1, np.uint64)[0])
        )

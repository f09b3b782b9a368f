"""LightningModule: trains a Seq2Seq with teacher forcing, validates with loss, perplexity and BLEU."""

import logging
import uuid
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.loggers import TensorBoardLogger
from torchmetrics import MeanMetric

from seq2seq_nmt.checkpoint import CHECKPOINT_KEY, make_payload, write_payload
from seq2seq_nmt.data.tokenizer import Tokenizer, labelled_positions
from seq2seq_nmt.data.vocab import PAD
from seq2seq_nmt.decoding.options import DecodingOptions
from seq2seq_nmt.decoding.search import Hypothesis
from seq2seq_nmt.decoding.strategies import decode
from seq2seq_nmt.metrics import corpus_bleu, gather_strings
from seq2seq_nmt.model import Seq2Seq
from seq2seq_nmt.translate.plot import attention_figure

log = logging.getLogger(__name__)
GREEDY = DecodingOptions(strategy="greedy")  # validation and test decode with greedy search


class TranslationModule(pl.LightningModule):
    """Wraps the network, its tokenizers and the settings translation needs.

    ``on_save_checkpoint`` stores all of it as plain Python types under ``checkpoint["nmt"]``,
    so a checkpoint rebuilds its model alone and loads with ``torch.load(weights_only=True)``
    (the format: ``seq2seq_nmt.checkpoint``). The network is ``self.net``, whose weights
    the checkpoint's ``state_dict`` names ``net.*`` (``checkpoint.WEIGHTS_PREFIX``).
    """

    def __init__(
        self,
        net: Seq2Seq,
        net_config: dict,
        src_tokenizer: Tokenizer,
        tgt_tokenizer: Tokenizer,
        data_config: dict,
        optimizer: Callable[..., torch.optim.Optimizer],
        loss: Callable[..., torch.nn.Module],
        teacher_forcing_ratio: float = 0.5,
        teacher_forcing_mode: str = "step",
        scheduler: Callable[..., Any] | None = None,
        num_samples: int = 5,
        bleu_tokenize: str = "13a",
    ):
        """``bleu_tokenize``: sacrebleu's tokenisation for BLEU (``13a``, ``intl``, ...). The
        values are checked where every config key is, in ``seq2seq_nmt.config``."""
        super().__init__()
        self.per_sequence = teacher_forcing_mode == "sequence"
        self.net, self.net_config = net, net_config  # checkpoint.NET_ATTRIBUTE: "net.*" weights
        self.src_tokenizer, self.tgt_tokenizer = src_tokenizer, tgt_tokenizer
        self.data_config, self.bleu_tokenize = data_config, bleu_tokenize
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.criterion = loss(ignore_index=PAD)
        self.teacher_forcing_ratio, self.num_samples = teacher_forcing_ratio, num_samples
        self.val_nll, self.test_nll = MeanMetric(), MeanMetric()
        self._outputs: list[tuple[str, str, str]] = []
        self.run_id = uuid.uuid4().hex  # the run's identity in checkpoints; a resume keeps its own
        self.test_outputs: list[tuple[str, str, str]] = []  # (source, output, reference), last test

    def forward(self, batch: dict, teacher_forcing_ratio: float = 1.0, per_sequence: bool = False):
        src, src_len, tgt_in = batch["src"], batch["src_len"], batch["tgt_in"]
        return self.net(src, src_len, tgt_in, teacher_forcing_ratio, per_sequence)

    def on_train_epoch_start(self) -> None:
        """A new order for each epoch: Lightning's own ``set_epoch`` reaches only a batch
        sampler's ``.sampler``. Skipped on a mid-epoch resume, which keeps the loaded position,
        and under ``trainer.overfit_batches``, which overfits the same first batches every epoch
        (Lightning turns shuffling off only in samplers of its own)."""
        sampler = getattr(self.trainer.train_dataloader, "batch_sampler", None)
        if hasattr(sampler, "set_epoch") and not self.trainer.overfit_batches:
            sampler.set_epoch(self.current_epoch)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        logits, _ = self(batch, self.teacher_forcing_ratio, self.per_sequence)
        loss = self.criterion(logits.flatten(0, 1), batch["tgt_out"].flatten())
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["src"].size(0))
        return loss

    def _eval_step(self, batch: dict, nll: MeanMetric) -> list[Hypothesis]:
        logits, _ = self(batch)
        tokens = batch["tgt_out"] != PAD
        loss = F.cross_entropy(logits.flatten(0, 1), batch["tgt_out"].flatten(), ignore_index=PAD)
        nll.update(loss, weight=tokens.sum())
        hyps = [h[0] for h in decode(self.net, batch["src"], batch["src_len"], GREEDY)]
        for src, hyp, ref in zip(batch["src"].tolist(), hyps, batch["refs"], strict=True):
            out = self.tgt_tokenizer.decode(hyp.tokens)
            self._outputs.append((self.src_tokenizer.decode(src), out, ref))
        return hyps

    def _eval_epoch_end(self, stage: str, nll: MeanMetric) -> None:
        mean_nll = nll.compute()
        nll.reset()
        outputs, self._outputs = gather_strings(self._outputs), []
        if not outputs:
            return
        hyps, refs = [h for _, h, _ in outputs], [r for _, _, r in outputs]
        bleu, sig = corpus_bleu(hyps, refs, self.bleu_tokenize)
        # every rank holds the same values (BLEU over the gathered outputs, the loss from a metric
        # synced by torchmetrics): their mean under DDP is that value, and Lightning is told so
        self.log_dict(
            {f"{stage}/loss": mean_nll, f"{stage}/ppl": torch.exp(mean_nll), f"{stage}/bleu": bleu},
            prog_bar=True, sync_dist=True,
        )  # fmt: skip
        if stage == "test":  # each validation has its line (seq2seq_nmt.train.progress)
            self.test_outputs = outputs
            log.info("test BLEU %.2f (%s) over %d sentences", bleu, sig, len(outputs))
        if not self.trainer.sanity_checking:
            self._log_samples(stage, outputs[: self.num_samples])

    def _board(self) -> Any:
        """The SummaryWriter of the run's TensorBoard logger, wherever it is in the list, or None."""
        boards = (lg for lg in self.loggers if isinstance(lg, TensorBoardLogger))
        return next((lg.experiment for lg in boards), None)

    def _log_samples(self, stage: str, samples: list[tuple[str, str, str]]) -> None:
        if (board := self._board()) is not None:
            rows = "\n".join(f"| {s} | {h} | {r} |" for s, h, r in samples)
            table = "| source | output | reference |\n|---|---|---|\n" + rows
            board.add_text(f"{stage}/samples", table, self.global_step)

    def _log_attention(self, batch: dict, hyps: list[Hypothesis]) -> None:
        """Heatmaps of the first ``num_samples`` sentences of ``batch`` (words + ``<eos>``)."""
        if (board := self._board()) is None:
            return
        for i, hyp in enumerate(hyps[: self.num_samples]):
            _, src = labelled_positions(self.src_tokenizer, batch["src"][i].tolist(), eos=True)
            rows, out = labelled_positions(self.tgt_tokenizer, hyp.tokens, eos=True)
            weights = hyp.attn[rows, : len(src)].float().cpu().numpy()
            fig = attention_figure(src, out, weights)
            board.add_figure(f"val/attention/{i}", fig, self.global_step)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        hyps = self._eval_step(batch, self.val_nll)
        # the same sentences every time: the last (longest) batch of the unshuffled val split
        if batch_idx == self.trainer.num_val_batches[0] - 1 and not self.trainer.sanity_checking:
            self._log_attention(batch, hyps)

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val", self.val_nll)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, self.test_nll)

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test", self.test_nll)

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = {"scheduler": self.scheduler_factory(optimizer), "monitor": "val/bleu"}
        return {"optimizer": optimizer, "lr_scheduler": scheduler}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        payload = make_payload(
            self.net_config, self.src_tokenizer, self.tgt_tokenizer, self.data_config, self.run_id
        )
        write_payload(checkpoint, payload)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """A resumed run keeps the identity of the run it resumes."""
        self.run_id = checkpoint.get(CHECKPOINT_KEY, {}).get("run") or self.run_id

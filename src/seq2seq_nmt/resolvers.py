"""OmegaConf resolvers the configs use, registered when the package is imported (also in the
processes of Hydra launchers, which import the task function's package)."""

from typing import Any

from omegaconf import OmegaConf

from seq2seq_nmt.rank import rank_zero


def needs_scaler(precision: Any) -> bool:
    """Whether ``precision`` trains with a gradient scaler (float16 autocast): only then must the
    optimizer step unfused, so that Lightning can unscale gradients before clipping them."""
    return str(precision) in ("16-mixed", "16")


def fused_ok(precision) -> bool:
    """``${fused_ok:${trainer.precision}}``: False under float16 autocast only (a gradient scaler
    must unscale gradients before clipping, which a fused step would do inside itself); fused
    optimizers are the fastest on CPU and GPU alike, in full precision and in bf16."""
    return not needs_scaler(precision)


def lang_of(pair: str, index: int) -> str:
    """``${lang_of:de-en,0}``: a language code of a pair (``de``)."""
    langs = str(pair).split("-")
    if len(langs) != 2 or not all(langs):
        raise ValueError(f"a language pair is two codes joined by '-' (de-en), got {pair!r}")
    return langs[int(index)]


def register() -> None:
    OmegaConf.register_new_resolver("rank_zero", rank_zero, replace=True)
    OmegaConf.register_new_resolver("fused_ok", fused_ok, replace=True)
    OmegaConf.register_new_resolver("lang_of", lang_of, replace=True)

"""Token-level losses over logits; both ignore padding (``ignore_index`` is set by the module)."""

import torch
from torch import nn


class NLLLoss(nn.Module):
    """The tutorial's criterion: log-softmax followed by NLLLoss."""

    def __init__(self, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__()
        self.nll = nn.NLLLoss(ignore_index=ignore_index, reduction=reduction)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.nll(logits.float().log_softmax(dim=-1), target)  # in float32 under autocast

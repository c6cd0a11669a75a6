"""R-Drop (Liang et al. 2021, "R-Drop: Regularized Dropout for Neural Networks"): a batch runs twice with
different dropout masks and the loss adds alpha times the symmetric KL divergence of the two predictions:

    loss = (CE(p1) + CE(p2)) / 2 + alpha * (KL(p1 || p2) + KL(p2 || p1)) / 2

The two passes are one forward of the batch stacked on itself (the masks differ per row), so there is one backward;
the model's mean cross-entropy over the doubled batch is already the first term."""
from __future__ import annotations

from typing import Any

import torch

_ROW_KEYS = ("input_ids", "attention_mask", "token_type_ids", "labels")


def rdrop_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    """The batch stacked on itself (rows i and B + i are the same example); task_id and other keys unchanged."""
    return {k: torch.cat([v, v]) if k in _ROW_KEYS and isinstance(v, torch.Tensor) else v for k, v in inputs.items()}


def symmetric_kl(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """(KL(p1 || p2) + KL(p2 || p1)) / 2 of two logit tensors (batch, classes), summed over classes and averaged
    over rows."""
    log_p, log_q = first.log_softmax(-1), second.log_softmax(-1)
    kl_pq = torch.nn.functional.kl_div(log_q, log_p, log_target=True, reduction="batchmean")  # KL(p || q)
    kl_qp = torch.nn.functional.kl_div(log_p, log_q, log_target=True, reduction="batchmean")
    return (kl_pq + kl_qp) / 2

"""Cross-view self-attention for synchronized texturing: each view's self-attention also attends to its
neighbour views (the previous and next in the rig's order, which the add-on lays out around the
object) and, for the early steps, to a reference view, so the views share style as well as texels.

``CrossViewAttention`` is a diffusers attention processor for the UNet's *self*-attention layers
(``attn1``); cross-attention to the prompt keeps the model's own processor. Queries are the view's own
tokens; keys and values are the concatenated tokens of [the view, its neighbours, the reference] from
the same CFG half. That makes self-attention cost (1 + neighbours + reference)x; memory for K/V the same.
It needs every view of a CFG half in one UNet call: when a micro-batch holds fewer samples than the
views, it falls back to plain self-attention for that call (the stage notes it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F


@dataclass
class ViewAttentionState:
    """Shared by every processor of one UNet: the step the denoise loop is at (set by the stage)."""

    step: int = 0
    reference_steps: int = 0  # steps (from 0) during which the reference view is attended
    fallbacks: int = field(default=0)


def neighbours_ring(views: int, count: int = 2) -> list[list[int]]:
    """For each view, the ``count`` nearest in a ring (previous, next, ...): the rig's cameras go round."""
    out = []
    for v in range(views):
        near: list[int] = []
        for d in range(1, views):
            for u in ((v - d) % views, (v + d) % views):
                if u != v and u not in near and len(near) < count:
                    near.append(u)
        out.append(near)
    return out


class CrossViewAttention:
    """Self-attention over a view's own tokens plus its neighbours' (and the reference view's early on)."""

    def __init__(self, views: int, neighbours: list[list[int]], reference: int | None,
                 state: ViewAttentionState) -> None:
        self.views, self.neighbours, self.reference, self.state = views, neighbours, reference, state

    def _sources(self) -> list[list[int]]:
        ref = self.reference if self.reference is not None and self.state.step < self.state.reference_steps else None
        out = []
        for v in range(self.views):
            src = [v] + [u for u in self.neighbours[v] if u != v]
            if ref is not None and ref not in src:
                src.append(ref)
            out.append(src)
        return out

    def __call__(self, attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None, *args: Any,
                 **kwargs: Any) -> torch.Tensor:
        batch = hidden_states.shape[0]
        plain = (encoder_hidden_states is not None or attention_mask is not None or hidden_states.ndim != 3
                 or attn.spatial_norm is not None or attn.group_norm is not None or batch % self.views)
        if plain:
            if batch % self.views:
                self.state.fallbacks += 1
            return _plain(attn, hidden_states, encoder_hidden_states, attention_mask)
        residual = hidden_states
        groups, n, tokens, channels = batch // self.views, self.views, hidden_states.shape[1], hidden_states.shape[2]
        query = attn.to_q(hidden_states)
        key = attn.to_k(hidden_states)
        value = attn.to_v(hidden_states)
        sources = self._sources()
        width = max(len(s) for s in sources)
        # views with fewer sources (a reference that is also a neighbour) are padded with their own tokens,
        # masked out: a duplicated key block would otherwise count twice in the softmax
        index = torch.tensor([s + [s[0]] * (width - len(s)) for s in sources], device=hidden_states.device)
        valid = torch.tensor([[True] * len(s) + [False] * (width - len(s)) for s in sources], device=hidden_states.device)
        heads = attn.heads
        head_dim = key.shape[-1] // heads

        def kv(x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, heads, width * L, head_dim)
            x = x.reshape(groups, n, tokens, -1)[:, index]  # (g, n, width, L, D)
            return x.reshape(batch, width * tokens, heads, head_dim).transpose(1, 2)

        q = query.reshape(batch, tokens, heads, head_dim).transpose(1, 2)
        mask = None
        if not bool(valid.all()):
            m = valid[:, :, None].expand(n, width, tokens).reshape(n, 1, 1, width * tokens)
            mask = m.repeat(groups, 1, 1, 1)
        if attn.norm_q is not None:
            q = attn.norm_q(q)
        k = kv(key)
        if attn.norm_k is not None:
            k = attn.norm_k(k)
        out = F.scaled_dot_product_attention(q, k, kv(value), attn_mask=mask, dropout_p=0.0, is_causal=False)
        out = out.transpose(1, 2).reshape(batch, tokens, heads * head_dim).to(query.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def _plain(attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None,
           attention_mask: torch.Tensor | None) -> torch.Tensor:
    from diffusers.models.attention_processor import AttnProcessor2_0

    return AttnProcessor2_0()(attn, hidden_states, encoder_hidden_states, attention_mask)


def install(unet: Any, views: int, reference: int | None, state: ViewAttentionState,
            neighbours: list[list[int]] | None = None) -> dict[str, Any]:
    """Put ``CrossViewAttention`` on every self-attention layer of ``unet``; returns the processors it had
    (give them back with ``unet.set_attn_processor(previous)`` after the stage: the model is cached)."""
    previous = dict(unet.attn_processors)
    proc = CrossViewAttention(views, neighbours if neighbours is not None else neighbours_ring(views), reference,
                              state)
    unet.set_attn_processor({name: (proc if name.endswith("attn1.processor") else p) for name, p in previous.items()})
    return previous

"""Self-attention of the encoder through ``torch.nn.functional.scaled_dot_product_attention`` (SDPA): full
attention, and Longformer-style sliding-window attention with global tokens.

The weights stay in fairseq's ``MultiheadAttention`` modules (``layers.N.self_attn.{q,k,v,out}_proj``), so official
checkpoints load by name; only the computation between the projections is ours. SDPA picks a fused kernel
(flash / memory-efficient on GPU, a flash-style kernel on CPU) when it can, and applies attention dropout itself
(``dropout_p``), as fairseq does on the attention weights.

Windowed pattern (``window`` W > 0, Longformer's): a token attends to the tokens at most W/2 positions away and to
every global token; a global token attends to every token. ``<s>`` (position 0) is global unless ``first_global`` is
False (masked-LM, as Longformer continues its MLM with no global token); callers add more (QA: the question) with a
boolean ``global_positions`` (batch x time). Padding keys are never attended to. Because position 0 is a key of every
query, no row of scores is fully masked (no NaN, even at padding queries); without it, a padding query attends to
itself alone (its output is never read, but a NaN there would reach every query through the values).

Two exact implementations of the windowed pattern (equal up to float rounding, tested):
- ``dense``: one boolean time x time mask per row, given to SDPA. Simple; its mask (and, with SDPA's math
  kernel, its scores) grow with the square of the length.
- ``blocked``: queries in blocks of W/2, each against the keys of its own and the two neighbouring blocks plus the
  global keys; the global queries separately against all keys. Scores grow linearly with the length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class AttentionPattern:
    """Which keys each query of a batch may attend to, built once per forward and shared by every layer.

    ``padding``: batch x time, True at padding (None: no padding). ``window``: 0 for full attention, else the
    total window W (W/2 on each side). ``global_mask``: batch x time, True at global tokens (window > 0 only).
    """

    padding: Optional[Tensor]
    window: int = 0
    global_mask: Optional[Tensor] = None
    blocked: bool = False
    first_global: bool = True

    @classmethod
    def build(
        cls,
        tokens: Tensor,
        padding: Optional[Tensor],
        window: int = 0,
        global_positions: Optional[Tensor] = None,
        implementation: str = "auto",
        first_global: bool = True,
    ) -> "AttentionPattern":
        """The pattern of ``tokens`` (batch x time, right-padded; ``padding`` its padding or None)."""
        if window < 0 or window % 2:
            raise ValueError(f"attention window {window}: an even number of tokens (W/2 on each side), or 0 for full")
        if global_positions is not None and global_positions.shape != tokens.shape:
            raise ValueError(
                f"global_positions has shape {tuple(global_positions.shape)}, the tokens {tuple(tokens.shape)}"
            )
        length = tokens.size(1)
        if window == 0 or length - 1 <= window // 2:  # every token within every window: that is full attention
            return cls(padding)
        global_mask = torch.zeros(tokens.shape, dtype=torch.bool, device=tokens.device)
        if global_positions is not None:
            global_mask |= global_positions.to(device=tokens.device, dtype=torch.bool)
        if first_global:
            global_mask[:, 0] = True  # <s>
        if padding is not None:
            global_mask = global_mask & ~padding
        if implementation == "auto":  # blocks save work only once the length spans more than three of them
            implementation = "blocked" if length > 2 * window else "dense"
        if implementation not in ("dense", "blocked"):
            raise ValueError(f"attention implementation {implementation!r}: auto, dense or blocked")
        return cls(padding, window, global_mask, implementation == "blocked", first_global)

    def dense_mask(self, length: int, device) -> Optional[Tensor]:
        """The boolean SDPA mask (True: may attend), batch x 1 x time x time, or batch x 1 x 1 x time (padding
        only), or None."""
        keep = None if self.padding is None else ~self.padding[:, None, None, :]
        if not self.window:
            return keep
        positions = torch.arange(length, device=device)
        band = (positions[:, None] - positions[None, :]).abs() <= self.window // 2
        g = self.global_mask
        allowed = band[None, None] | g[:, None, None, :] | g[:, None, :, None]
        allowed = allowed if keep is None else allowed & keep
        if not self.first_global:  # a padding query, with no global key, keeps itself (module docstring)
            allowed = allowed | torch.eye(length, dtype=torch.bool, device=device)[None, None]
        return allowed


def _heads(mha, projection, x: Tensor) -> Tensor:
    """``projection(x)`` (time x batch x hidden, fairseq's layout) as batch x heads x time x head_dim."""
    t, b, _ = x.shape
    return projection(x).view(t, b, mha.num_heads, mha.head_dim).permute(1, 2, 0, 3)


def split_heads(mha, x: Tensor, queries_of: Optional[Tensor] = None) -> tuple[Tensor, Tensor, Tensor]:
    """Queries (of ``queries_of``, default ``x``), keys and values of ``x`` through fairseq ``MultiheadAttention``
    ``mha``'s projections, each batch x heads x time x head_dim."""
    return (
        _heads(mha, mha.q_proj, x if queries_of is None else queries_of),
        _heads(mha, mha.k_proj, x),
        _heads(mha, mha.v_proj, x),
    )


def self_attention(mha, x: Tensor, pattern: AttentionPattern, first_position_only: bool = False) -> Tensor:
    """``mha``'s self-attention output (after ``out_proj``) for ``x`` (time x batch x hidden) under ``pattern``;
    with ``first_position_only``, for position 0 alone (1 x batch x hidden: <s> is global, so that is full
    attention in both patterns)."""
    t, b, c = x.shape
    # position 0 alone: its query only (projecting every query would be ~1/3 of the layer's attention projections)
    q, k, v = split_heads(mha, x, x[:1] if first_position_only else None)
    dropout = mha.dropout_module.p if (mha.training or mha.dropout_module.apply_during_inference) else 0.0
    if first_position_only:
        keep = None if pattern.padding is None else ~pattern.padding[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, dropout_p=dropout)
    elif pattern.blocked:
        out = blocked_window_attention(q, k, v, pattern, dropout)
    else:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=pattern.dense_mask(t, x.device), dropout_p=dropout)
    return mha.out_proj(out.permute(2, 0, 1, 3).reshape(out.size(2), b, c))


def blocked_window_attention(q: Tensor, k: Tensor, v: Tensor, pattern: AttentionPattern, dropout: float) -> Tensor:
    """The windowed pattern in blocks (q, k, v: batch x heads x time x head_dim): memory linear in the length."""
    b, h, t, d = q.shape
    w = pattern.window // 2
    blocks = -(-t // w)
    padded = blocks * w
    invalid = torch.zeros(b, t, dtype=torch.bool, device=q.device) if pattern.padding is None else pattern.padding
    # Keys of block n are the positions n*w - w .. n*w + 2w - 1: pad w on the left, w (plus the rounding) on the right.
    key_invalid = F.pad(invalid, (w, padded - t + w), value=True)
    local_k, local_v = (F.pad(z, (0, 0, w, padded - t + w)).unfold(2, 3 * w, w).transpose(-1, -2) for z in (k, v))
    # Query a of a block and its key c are (a - c + w) apart: the band |a - c + w| <= w is the same in every block.
    a, c = torch.arange(w, device=q.device)[:, None], torch.arange(3 * w, device=q.device)[None, :]
    band = ((c - a) >= 0) & ((c - a) <= 2 * w)
    local_allowed = band[None, None] & ~key_invalid.unfold(1, 3 * w, w)[:, :, None, :]  # b x blocks x w x 3w
    if not pattern.first_global:  # a padding query, with no global key, keeps itself (module docstring)
        local_allowed = local_allowed | ((c - a) == w)[None, None]
    # Global keys (G per row at most; unused slots masked), for the queries they are not already in the window of.
    glob = pattern.global_mask
    count = int(glob.sum(1).max())
    slots = torch.argsort((~glob).to(torch.int8), dim=1, stable=True)[:, :count]  # global positions first
    slot_valid = glob.gather(1, slots)
    query_pos = torch.arange(padded, device=q.device)
    far = (query_pos[None, :, None] - slots[:, None, :]).abs() > w  # b x padded x G
    global_allowed = (far & slot_valid[:, None, :]).view(b, blocks, w, count)
    gather = slots[:, None, :, None].expand(b, h, count, d)
    keys = torch.cat([local_k, k.gather(2, gather)[:, :, None].expand(b, h, blocks, count, d)], dim=3)
    values = torch.cat([local_v, v.gather(2, gather)[:, :, None].expand(b, h, blocks, count, d)], dim=3)
    allowed = torch.cat([local_allowed, global_allowed], dim=3)
    # SDPA's fused kernels take 4-d inputs: (batch x blocks) x heads x w x keys, the mask broadcast over heads.
    query_blocks = F.pad(q, (0, 0, 0, padded - t)).view(b, h, blocks, w, d)

    def fold(z):
        return z.transpose(1, 2).reshape(b * blocks, h, z.size(3), d)

    out = F.scaled_dot_product_attention(
        fold(query_blocks),
        fold(keys),
        fold(values),
        attn_mask=allowed.view(b * blocks, 1, w, 3 * w + count),
        dropout_p=dropout,
    )
    out = out.view(b, blocks, h, w, d).transpose(1, 2).reshape(b, h, padded, d)
    if count == 0:  # no global token at all (masked-LM without <s> global)
        return out[:, :, :t]
    # Global queries attend to every (non-padding) key; their rows replace the windowed ones. Unused slots write
    # to an extra position that is dropped, so no real position is written twice.
    keep = None if pattern.padding is None else ~pattern.padding[:, None, None, :]
    global_out = F.scaled_dot_product_attention(q.gather(2, gather), k, v, attn_mask=keep, dropout_p=dropout)
    target = torch.where(slot_valid, slots, padded)[:, None, :, None].expand(b, h, count, d)
    out = torch.cat([out, out.new_zeros(b, h, 1, d)], dim=2).scatter(2, target, global_out)
    return out[:, :, :t]

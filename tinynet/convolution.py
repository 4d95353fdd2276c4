"""2-D convolution (Conv2D) on images stored channels last: x has shape (batch, height, width, channels).

A filter is a small stack of weights W[:, :, :, f] of shape (kh, kw, C) that slides over the image.
At each stop it multiplies the window of pixels under it by its weights and adds everything up:

    z[n, i, j, f] = b[f] + sum over p < kh, q < kw, c < C of  x[n, i*sh + p, j*sw + q, c] * W[p, q, c, f]

(sh, sw are the strides: how far the window moves between stops.)

im2col: copy every window out as one row of a matrix, and the sum becomes one matrix product.

    x, one sample, one channel (4x4)     kernel 3x3, strides 1: the four windows, each a row of cols
    +---+---+---+---+
    | a | b | c | d |                   window at (0, 0) -> row 0:  a b c  e f g  i j k
    +---+---+---+---+                   window at (0, 1) -> row 1:  b c d  f g h  j k l
    | e | f | g | h |                   window at (1, 0) -> row 2:  e f g  i j k  m n o
    +---+---+---+---+                   window at (1, 1) -> row 3:  f g h  j k l  n o p
    | i | j | k | l |
    +---+---+---+---+                   cols[n, i, j, p, q, c] = x[n, i*sh + p, j*sw + q, c]
    | m | n | o | p |                   as a matrix: rows (n, i, j), columns (p, q, c):
    +---+---+---+---+                   (batch * out_h * out_w, kh * kw * C)

The kernel W (kh, kw, C, F), Keras's layout, read as a matrix has rows (p, q, c) in the same order:

    forward:   z = cols @ W.reshape(kh * kw * C, F) + b             -> reshaped to (batch, out_h, out_w, F)
    backward:  with dz reshaped to (batch * out_h * out_w, F)
               dW = cols.T @ dz                                     (reshaped to (kh, kw, C, F))
               db = sum of dz over batch, i, j
               dx = col2im(dz @ W.T): each entry of a window goes back to the pixel it was copied
                    from, and where windows overlap (stride < kernel) the contributions add up

Output size, Keras's rules, along each spatial axis (input size n, kernel k, stride s):

    padding="valid":  out = floor((n - k) / s) + 1                  no padding: windows stay inside
    padding="same":   out = ceil(n / s)                             zeros around the border, as much as needed:
                      total = max((out - 1) * s + k - n, 0)
                      top = total // 2,  bottom = total - top       (the odd one goes to the bottom / right)

pooling.py slides windows the same way and uses the helpers here.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinynet import backend
from tinynet.engine import fast
from tinynet.layer import Layer, Shape, WithActivation

PADDINGS = ("valid", "same")
Pair = tuple[int, int]


# ---- sliding windows, shared with pooling.py ----------------------------------------------------------------

def output_length(n: int, k: int, s: int, padding: str) -> tuple[int, int, int]:
    """(out, pad_before, pad_after) along one spatial axis of size n, for a window k moved by stride s."""
    if padding == "valid":
        return (n - k) // s + 1, 0, 0
    out = -(-n // s)  # ceil(n / s)
    total = max((out - 1) * s + k - n, 0)
    return out, total // 2, total - total // 2


def pad_images(x: Any, pads: tuple[Pair, Pair], value: float = 0.0) -> Any:
    """x with `value` added around the height and width axes: pads = ((top, bottom), (left, right))."""
    if pads == ((0, 0), (0, 0)):
        return x
    return backend.xp().pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=value)


def im2col(x: Any, window: Pair, strides: Pair, out: Pair) -> Any:
    """Every window of x copied out: cols[n, i, j, p, q, c] = x[n, i*sh + p, j*sw + q, c].

    One strided slice per kernel offset (p, q): the slice holds, for every output pixel (i, j),
    the input pixel at offset (p, q) in its window. (Plain slices rather than sliding_window_view:
    the same lines run on NumPy and CuPy, and col2im below is this loop with = turned into +=.)
    """
    if fast.im2col:  # one strided view of x, copied once
        return fast.im2col(x, window, strides, out)
    (kh, kw), (sh, sw), (oh, ow) = window, strides, out
    cols = backend.xp().empty((x.shape[0], oh, ow, kh, kw, x.shape[3]), dtype=x.dtype)
    for p in range(kh):
        for q in range(kw):
            cols[:, :, :, p, q, :] = x[:, p:p + sh * oh:sh, q:q + sw * ow:sw, :]
    return cols


def col2im(cols: Any, x_shape: Shape, strides: Pair) -> Any:
    """The transpose of im2col: dx[n, i*sh + p, j*sw + q, c] += dcols[n, i, j, p, q, c] (overlaps add)."""
    _, oh, ow, kh, kw, _ = cols.shape
    sh, sw = strides
    dx = backend.xp().zeros(x_shape, dtype=cols.dtype)
    for p in range(kh):
        for q in range(kw):
            dx[:, p:p + sh * oh:sh, q:q + sw * ow:sw, :] += cols[:, :, :, p, q, :]
    return dx


def crop(dx_padded: Any, pads: tuple[Pair, Pair], height: int, width: int) -> Any:
    """Undo pad_images: the gradient of the padding itself goes nowhere."""
    (top, _), (left, _) = pads
    return dx_padded[:, top:top + height, left:left + width, :]


# ---- argument and shape checks (kept apart from the math above) ----------------------------------------------

def as_pair(layer: str, arg: str, value: Any) -> Pair:
    """An int or a pair of ints, each positive, as a pair: 3 -> (3, 3); else a ValueError naming the layer."""
    items = [value, value] if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value
    if not isinstance(items, (tuple, list)) or len(items) != 2 or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in items):
        raise ValueError(f"{layer}: {arg} must be a positive integer or a pair of them such as (3, 3), got {value!r}")
    return int(items[0]), int(items[1])


def check_padding(layer: str, padding: Any) -> str:
    if not isinstance(padding, str) or padding.lower() not in PADDINGS:
        raise ValueError(f"{layer}: unknown padding {padding!r}; valid values are {', '.join(map(repr, PADDINGS))}")
    return padding.lower()


def reshape_hint(shape: Shape) -> str:
    """What to add before a 2-D layer that got samples of `shape` instead of (height, width, channels)."""
    if len(shape) == 2:
        return f"; add Reshape(({shape[0]}, {shape[1]}, 1)) before it to give the images one channel"
    side = math.isqrt(shape[0]) if len(shape) == 1 else 0
    if side and side * side == shape[0]:
        return f"; for {side}x{side} images with one channel add Reshape(({side}, {side}, 1)) before it"
    return "; add a Reshape((height, width, channels)) before it"


def check_images(layer: Layer, input_shape: Shape) -> None:
    """A ValueError, with a Reshape to add, unless one sample has the shape (height, width, channels)."""
    if len(input_shape) != 3:
        raise ValueError(f"{layer.name}: {type(layer).__name__} expects images of shape (batch, height, width, "
                         f"channels), got per-sample shape {tuple(input_shape)}{reshape_hint(tuple(input_shape))}")


def check_input(layer: Layer, x: Any) -> None:
    """A ValueError naming the layer unless the batch x has the shape the layer was built for."""
    if tuple(x.shape[1:]) != layer.input_shape:
        hint = reshape_hint(tuple(x.shape[1:])) if x.ndim != 4 else ""
        raise ValueError(f"{layer.name}: expected input of shape (batch, {', '.join(map(str, layer.input_shape))}), "
                         f"got {tuple(x.shape)}{hint}")


def window_geometry(layer: Layer, input_shape: Shape, window: Pair, strides: Pair,
                    padding: str, what: str) -> tuple[Pair, tuple[Pair, Pair]]:
    """(out_h, out_w) and ((top, bottom), (left, right)) padding for images of `input_shape`; a ValueError
    when a `what` (kernel_size, pool_size) of `window` does not fit inside them with padding="valid"."""
    check_images(layer, input_shape)
    (oh, top, bottom), (ow, left, right) = (output_length(n, k, s, padding)
                                            for n, k, s in zip(input_shape[:2], window, strides))
    if oh < 1 or ow < 1:
        raise ValueError(f"{layer.name}: {what} {window} is larger than the input's height and width "
                         f"{tuple(input_shape[:2])} with padding='valid'; use a smaller {what} or padding='same'")
    return (oh, ow), ((top, bottom), (left, right))


# ---- the layer -------------------------------------------------------------------------------------------------

class Conv2D(WithActivation):
    """2-D convolution over images (batch, height, width, channels), with an optional activation.

    forward:  cols = im2col(x)                       (batch * out_h * out_w, kh * kw * C)
              z = cols @ W.reshape(kh * kw * C, F) + b,  y = activation(z)
    backward: dz = activation.backward(dy, z, y)
              dW = cols.T @ dz + d penalty(W)/dW,  db = sum of dz,  dx = col2im(dz @ W.T)

    W: (kh, kw, C, F) and b: (F,), Keras's kernel and bias. The module docstring draws the layout.
    """

    def __init__(self, filters: int, kernel_size: int | Pair, strides: int | Pair = (1, 1), padding: str = "valid",
                 activation: Any = None, use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 bias_initializer: Any = "zeros", kernel_regularizer: Any = None, bias_regularizer: Any = None,
                 input_shape: Shape | None = None, seed: int | None = None, name: str | None = None) -> None:
        super().__init__(name, input_shape)
        if not isinstance(filters, (int, np.integer)) or isinstance(filters, bool) or filters < 1:
            raise ValueError(f"{self.name}: filters must be a positive integer, got {filters!r}")
        self.filters, self.seed = int(filters), seed
        self.kernel_size = as_pair(self.name, "kernel_size", kernel_size)
        self.strides = as_pair(self.name, "strides", strides)
        self.padding = check_padding(self.name, padding)
        self.set_kernel_options(activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
                                bias_regularizer)

    def geometry(self, input_shape: Shape) -> tuple[Pair, tuple[Pair, Pair]]:
        """(out_h, out_w) and the padding ((top, bottom), (left, right)) for images of `input_shape`."""
        return window_geometry(self, input_shape, self.kernel_size, self.strides, self.padding, "kernel_size")

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        (oh, ow), _ = self.geometry(input_shape)
        return (oh, ow, self.filters)

    def weight_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        check_images(self, input_shape)
        shapes = {"W": (*self.kernel_size, input_shape[2], self.filters), "b": (self.filters,)}
        return {name: shapes[name] for name in self.weight_names}

    def build(self, input_shape: Shape) -> Shape:
        out_shape = super().build(input_shape)
        self.out_hw, self.pads = self.geometry(self.input_shape)
        self.draw_weights(self.input_shape, self.seed)
        return out_shape

    def forward_logits(self, x: Any, training: bool = False) -> Any:
        if self.output_shape is None:  # used on its own: build for this input, as Keras does
            self.build(tuple(x.shape[1:]))
        check_input(self, x)
        n, (oh, ow), F = x.shape[0], self.out_hw, self.filters
        x_padded = pad_images(x, self.pads)
        self.x_padded_shape = x_padded.shape
        self.cols = im2col(x_padded, self.kernel_size, self.strides, self.out_hw).reshape(n * oh * ow, -1)
        z = self.cols @ self.W.reshape(-1, F)                                 # (batch * oh * ow, F)
        if self.use_bias:
            z += self.b
        return z.reshape(n, oh, ow, F)

    def backward_logits(self, dz: Any) -> Any:
        n, (oh, ow), F = dz.shape[0], self.out_hw, self.filters
        dz = dz.reshape(-1, F)                                                # (batch * oh * ow, F)
        self.dW[...] = (self.cols.T @ dz).reshape(self.W.shape)
        if self.use_bias:
            self.db[...] = dz.sum(axis=0)
        self.add_penalty_gradients()  # dW += d penalty(W) / dW, where a regularizer is set
        if not self.needs_input_grad:
            return None  # the model's first layer with weights: nothing below needs dx
        if fast.conv_input_gradient:  # the product one kernel offset at a time: col2im adds whole rows
            return crop(fast.conv_input_gradient(dz.reshape(n, oh, ow, F), self.W, self.x_padded_shape, self.strides),
                        self.pads, *self.input_shape[:2])
        dcols = (dz @ self.W.reshape(-1, F).T).reshape(n, oh, ow, *self.kernel_size, self.W.shape[2])
        dx = col2im(dcols, self.x_padded_shape, self.strides)
        return crop(dx, self.pads, *self.input_shape[:2])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding, **self.kernel_options_config(),
                "seed": self.seed}

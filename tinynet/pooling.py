"""Pooling: shrink images (batch, height, width, channels) by summarizing each window, channel by channel.

The windows slide as a convolution's do (convolution.py draws them, and gives the output size rules
for padding "valid" and "same"); pooling has no weights, and each channel is pooled on its own:

    windows[n, i, j, p, q, c] = x[n, i*sh + p, j*sw + q, c]      (im2col, from convolution.py)

    MaxPooling2D       y[n, i, j, c] = max over (p, q) of windows[n, i, j, p, q, c]
                       dx: each dy[n, i, j, c] goes to the one pixel of its window that was the maximum
    AveragePooling2D   y[n, i, j, c] = mean over (p, q) of windows[n, i, j, p, q, c]
                       dx: each dy[n, i, j, c] is shared equally by the pixels of its window
    GlobalAveragePooling2D   y[n, c] = mean over (h, w) of x[n, h, w, c];   dx = dy / (height * width)

In the backward passes col2im adds each window's share back onto its pixels, so where windows
overlap (strides smaller than pool_size) a pixel's gradient is the sum over the windows it is in.

Padding "same", as Keras: max pooling pads with -inf (padding is never the maximum); average
pooling averages only the real pixels of a window, leaving the padding out of the count.
Ties in max pooling: the first maximum in window order (row by row, left to right) gets all of dy.
"""
from __future__ import annotations

from typing import Any

from tinynet import backend
from tinynet.convolution import Pair, as_pair, check_images, check_input, check_padding, col2im, crop, im2col, \
    pad_images, window_geometry
from tinynet.engine import fast
from tinynet.layer import Layer, Shape


class Pooling2D(Layer):
    """What max and average pooling share: the window, its strides, the padding, and the output shape."""

    def __init__(self, pool_size: int | Pair = (2, 2), strides: int | Pair | None = None, padding: str = "valid",
                 name: str | None = None, input_shape: Shape | None = None) -> None:
        super().__init__(name, input_shape)
        self.pool_size = as_pair(self.name, "pool_size", pool_size)
        self.strides = self.pool_size if strides is None else as_pair(self.name, "strides", strides)
        self.padding = check_padding(self.name, padding)

    def geometry(self, input_shape: Shape) -> tuple[Pair, tuple[Pair, Pair]]:
        """(out_h, out_w) and the padding ((top, bottom), (left, right)) for images of `input_shape`."""
        return window_geometry(self, input_shape, self.pool_size, self.strides, self.padding, "pool_size")

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        (oh, ow), _ = self.geometry(input_shape)
        return (oh, ow, input_shape[2])

    def build(self, input_shape: Shape) -> Shape:
        out_shape = super().build(input_shape)
        self.out_hw, self.pads = self.geometry(self.input_shape)
        return out_shape

    def windows(self, x: Any, pad_value: float) -> Any:
        """windows[n, i, j, p, q, c] = x[n, i*sh + p, j*sw + q, c] of x padded with `pad_value`."""
        if self.output_shape is None:  # used on its own: build for this input, as Keras does
            self.build(tuple(x.shape[1:]))
        check_input(self, x)
        x_padded = pad_images(x, self.pads, pad_value)
        self.x_padded_shape = x_padded.shape
        return im2col(x_padded, self.pool_size, self.strides, self.out_hw)

    def tiles(self, x: Any) -> bool:
        """Whether the windows tile x side by side (strides == pool_size, padding "valid"): then a fast twin
        pools strided views of x instead of im2col's copies. Builds the layer and checks x, as windows() does."""
        if self.output_shape is None:
            self.build(tuple(x.shape[1:]))
        check_input(self, x)
        return self.strides == self.pool_size and self.padding == "valid"

    def windows_backward(self, dwindows: Any) -> Any:
        """dx from the gradient of every window entry: added back onto its pixel (col2im), padding cropped."""
        return crop(col2im(dwindows, self.x_padded_shape, self.strides), self.pads, *self.input_shape[:2])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "pool_size": list(self.pool_size), "strides": list(self.strides),
                "padding": self.padding}


class MaxPooling2D(Pooling2D):
    """The largest value of each window, channel by channel (strides default to pool_size: no overlap).

    forward:  y[n, i, j, c] = max over (p, q) of windows[n, i, j, p, q, c]
    backward: dwindows = dy at the window's first maximum (row by row, left to right), 0 elsewhere
              dx = col2im(dwindows)                     (overlapping windows add)
    """

    def forward(self, x: Any, training: bool = False) -> Any:
        if fast.max_pool_forward and self.tiles(x):  # windows side by side: max over views of x, no im2col
            self.x, self.windows_flat, self.y = x, None, fast.max_pool_forward(x, self.pool_size)
            self.twin_backward = fast.max_pool_backward  # its pair, even if the twins are switched off meanwhile
            return self.y
        windows = self.windows(x, -float("inf"))  # -inf padding never wins a window
        n, oh, ow, kh, kw, c = windows.shape
        self.windows_flat = windows.reshape(n, oh, ow, kh * kw, c)            # entry p * kw + q: row by row
        self.y = self.windows_flat.max(axis=3)
        return self.y

    def backward(self, dy: Any) -> Any:
        if self.windows_flat is None:  # the forward ran the fast twin
            return self.twin_backward(self.x, self.y, dy, self.pool_size)
        xp = backend.xp()
        n, oh, ow, k, c = self.windows_flat.shape
        dwindows = xp.empty_like(self.windows_flat, dtype=dy.dtype)
        found = xp.zeros(dy.shape, dtype=bool)                                # has the window's maximum been met yet?
        for entry in range(k):                                                # each window's entries, in order
            is_first_max = (self.windows_flat[:, :, :, entry, :] == self.y) & ~found
            dwindows[:, :, :, entry, :] = is_first_max * dy
            found |= is_first_max
        return self.windows_backward(dwindows.reshape(n, oh, ow, *self.pool_size, c))


class AveragePooling2D(Pooling2D):
    """The mean of each window, channel by channel (strides default to pool_size: no overlap).

    forward:  y[n, i, j, c] = sum over (p, q) of windows[n, i, j, p, q, c] / count[i, j]
    backward: dwindows[n, i, j, p, q, c] = dy[n, i, j, c] / count[i, j]
              dx = col2im(dwindows)                     (overlapping windows add)

    count[i, j] is the number of real pixels in window (i, j): pool_h * pool_w with padding "valid";
    with "same", windows at the border that reach into the padding count fewer (as in Keras).
    """

    def forward(self, x: Any, training: bool = False) -> Any:
        if fast.avg_pool_forward and self.tiles(x):  # windows side by side: sum of views of x, no im2col
            self.count, self.twin_backward = None, fast.avg_pool_backward
            return fast.avg_pool_forward(x, self.pool_size)
        windows = self.windows(x, 0.0)
        self.count = self.window_counts(x.dtype)
        return windows.sum(axis=(3, 4)) / self.count

    def window_counts(self, dtype: Any) -> Any:
        """count[i, j], shaped (out_h, out_w, 1): how many real (unpadded) pixels window (i, j) covers."""
        height, width, _ = self.input_shape
        ones = pad_images(backend.xp().ones((1, height, width, 1), dtype), self.pads, 0.0)
        return im2col(ones, self.pool_size, self.strides, self.out_hw).sum(axis=(3, 4))[0]

    def backward(self, dy: Any) -> Any:
        if self.count is None:  # the forward ran the fast twin
            return self.twin_backward(dy, (dy.shape[0], *self.input_shape), self.pool_size)
        n, (oh, ow), c = dy.shape[0], self.out_hw, dy.shape[3]
        share = (dy / self.count)[:, :, :, None, None, :]                     # the same for every pixel of a window
        dwindows = backend.xp().broadcast_to(share, (n, oh, ow, *self.pool_size, c))
        return self.windows_backward(dwindows)


class GlobalAveragePooling2D(Layer):
    """The mean of each channel over the whole image: (batch, height, width, channels) -> (batch, channels).

    forward:  y[n, c] = sum over (h, w) of x[n, h, w, c] / (height * width)
    backward: dx[n, h, w, c] = dy[n, c] / (height * width)           (every pixel had the same weight)

    keepdims=True keeps the output 4-D: (batch, 1, 1, channels), as in Keras.
    """

    def __init__(self, keepdims: bool = False, name: str | None = None, input_shape: Shape | None = None) -> None:
        super().__init__(name, input_shape)
        if not isinstance(keepdims, bool):
            raise TypeError(f"{self.name}: keepdims must be True or False, got {keepdims!r}")
        self.keepdims = keepdims

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        check_images(self, input_shape)
        return (1, 1, input_shape[2]) if self.keepdims else (input_shape[2],)

    def forward(self, x: Any, training: bool = False) -> Any:
        if self.output_shape is None:  # used on its own: build for this input, as Keras does
            self.build(tuple(x.shape[1:]))
        check_input(self, x)
        self.x_shape = x.shape
        return x.mean(axis=(1, 2), keepdims=self.keepdims)

    def backward(self, dy: Any) -> Any:
        n, height, width, c = self.x_shape
        share = dy.reshape(n, 1, 1, c) / (height * width)
        return backend.xp().broadcast_to(share, self.x_shape).copy()  # a real array, as other layers return

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "keepdims": self.keepdims}

"""Fast twins for the CPU: NumPy tricks that save passes over memory or temporaries.

Each function does what the textbook lines named in its docstring do, and
tests/test_engine.py and tests/test_engine_cnn.py hold it to them.
"""
from __future__ import annotations

import math
import mmap
from typing import Any

import numpy as np

HUGE_PAGE = 2 << 20  # bytes in one x86-64 transparent huge page
PIECE_BYTES = 128 << 10  # of each vector Adam steps at a time: six such pieces fit a 1-2 MiB L2 cache
FLUSH_EVERY = 16  # steps between flushes of Adam's vanishing first moments (see adam_update)
POOL_PIECE_BYTES = 384 << 10  # of the images max pooling takes at a time: the piece and its dx stay in L2


def dense_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dense.forward's y = x @ W + b, the bias added in place (no temporary the size of y)."""
    y = np.matmul(x, W)
    y += b
    return y


def dense_backward(x: np.ndarray, dy: np.ndarray, W: np.ndarray, dW: np.ndarray, db: np.ndarray,
                   needs_input_grad: bool) -> np.ndarray | None:
    """Dense.backward's products written straight into the model's gradient vector (no temporaries)."""
    np.matmul(x.T, dy, out=dW)
    np.sum(dy, axis=0, out=db)
    return np.matmul(dy, W.T) if needs_input_grad else None


def dropout_threshold(rate: float) -> tuple[int, float]:
    """16-bit threshold and scale of a mask that keeps a unit when its 16 random bits are >= threshold.

    `rate` is rounded to a multiple of 1/65536 and the scale 1 / (1 - rate) uses the rounded
    value, so the mask's mean stays exactly 1; a rate just below 1 still keeps something.
    """
    threshold = min(round(rate * 65536), 65535)
    return threshold, 1.0 / (1.0 - threshold / 65536)


def dropout_mask(shape: tuple[int, ...], rate: float, gen: np.random.Generator, dtype: Any) -> np.ndarray:
    """Dropout.draw_mask from the generator's raw 64-bit output, 16 bits a unit: a third of the cost of uniforms."""
    threshold, scale = dropout_threshold(rate)
    size = math.prod(shape)
    bits = gen.bit_generator.random_raw(-(-size // 4)).view(np.uint16)[:size].reshape(shape)
    dtype = np.dtype(dtype)
    return (bits >= threshold).astype(dtype) * dtype.type(scale)


def zeros(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """np.zeros, for a vector of 2 MiB or more in 2 MiB-aligned memory advised for transparent huge pages.

    One TLB entry then maps 2 MiB instead of 4 kiB, so the optimizer's passes over the
    flat vectors stop missing the TLB: about 7% off Adam's time on the tutorial MLP.
    Smaller arrays, and systems without madvise, get plain np.zeros.
    """
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < HUGE_PAGE or not hasattr(mmap, "MADV_HUGEPAGE"):
        return np.zeros(shape, dtype)
    length = -(-nbytes // HUGE_PAGE) * HUGE_PAGE
    area = mmap.mmap(-1, length + HUGE_PAGE, flags=mmap.MAP_PRIVATE)  # anonymous, zeroed, copy-on-write at a fork
    start = -np.frombuffer(area, np.uint8, count=1).ctypes.data % HUGE_PAGE
    try:
        area.madvise(mmap.MADV_HUGEPAGE, start, length)
    except OSError:  # huge pages switched off: ordinary pages, same results
        pass
    return np.frombuffer(area, dtype, count=math.prod(shape), offset=start).reshape(shape)


def take_rows(x: np.ndarray, rows: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out[...] = x[rows] without the temporary x[rows] and the bounds check that would copy `rows`."""
    return np.take(x, rows, axis=0, out=out, mode="clip")


class AdamInPieces:
    """What the CPU twin of Adam keeps between steps: the step count, two scratch buffers, and
    views of the flat vectors cut into pieces that fit the L2 cache (made once per p and g)."""

    def __init__(self, optimizer: Any) -> None:
        self.iterations = optimizer.iterations
        self.key: tuple[Any, ...] = ()
        self.pieces: list[tuple[np.ndarray, ...]] = []

    def pieces_of(self, *vectors: np.ndarray) -> list[tuple[np.ndarray, ...]]:
        if len(self.key) != len(vectors) or any(a is not b for a, b in zip(self.key, vectors)):
            size = max(1, PIECE_BYTES // vectors[0].itemsize)
            flat = [v.reshape(-1) for v in vectors]
            scratch = [np.empty(min(size, flat[0].size), flat[0].dtype) for _ in range(2)]
            self.key = vectors
            self.pieces = [tuple(v[i:i + size] for v in flat) + tuple(s[:min(size, flat[0].size - i)] for s in scratch)
                           for i in range(0, flat[0].size, size)]
        return self.pieces


def adam_update(optimizer: Any, p: np.ndarray, g: np.ndarray) -> None:
    """Adam.update's lines, operation for operation, over one L2-sized piece of the vectors after another.

    Line by line over whole vectors, each of the twelve passes reads p, g, m or v back from
    main memory, where the matrix products between two steps pushed them; piece by piece, a
    piece's p, g, m, v and scratch (640 kiB) stay in the L2 cache across its twelve passes:
    1.5 -> 1.1 ms a step for the tutorial MLP on a Xeon. Elementwise, so the results are the
    textbook's to the bit, but for one thing: every FLUSH_EVERY steps, first moments too small
    to move a weight (below 1e-20 of epsilon) are set to zero. A weight that gets no gradient
    (a pixel that is always blank) has its m shrink by beta_1 every step into subnormal numbers,
    which many x86 CPUs handle a hundred times slower: unflushed, the tutorial's epochs grew
    from 2.4 s to 2.9 s in six.
    """
    form = optimizer.engine_form
    if not isinstance(form, AdamInPieces):
        form = optimizer.engine_form = AdamInPieces(optimizer)
    form.iterations += 1
    t, b1, b2, eps = form.iterations, optimizer.beta_1, optimizer.beta_2, optimizer.epsilon
    alpha = optimizer.learning_rate * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
    flush_below = 1e-20 * eps if t % FLUSH_EVERY == 0 else 0
    for p_, g_, m, v, tmp, tmp2 in form.pieces_of(p, g, optimizer.slots["m"], optimizer.slots["v"]):
        np.subtract(g_, m, out=tmp)  # m += (1 - beta_1) * (g - m)
        tmp *= 1 - b1
        m += tmp
        if flush_below:
            np.abs(m, out=tmp)
            np.copyto(m, 0, where=tmp < flush_below)
        np.multiply(g_, g_, out=tmp)  # v += (1 - beta_2) * (g * g - v)
        tmp -= v
        tmp *= 1 - b2
        v += tmp
        np.multiply(m, alpha, out=tmp2)  # p -= alpha * m / (sqrt(v) + epsilon)
        np.sqrt(v, out=tmp)
        tmp += eps
        np.divide(tmp2, tmp, out=tmp)
        p_ -= tmp


# ---- convolution and pooling ------------------------------------------------------------------------------------

def im2col(x: np.ndarray, window: tuple[int, int], strides: tuple[int, int], out: tuple[int, int]) -> np.ndarray:
    """convolution.im2col's cols[n, i, j, p, q, c] = x[n, i*sh + p, j*sw + q, c], in fewer, longer copies.

    The textbook copies one kernel offset (p, q) at a time, a run of C values per window: NumPy's
    inner loop starts kh * kw * batch * out_h * out_w times. As one strided view of x copied at
    once, the innermost run is a window's whole row (kw * C values, contiguous in x and in cols):
    5.4 -> 2.0 ms a training step for the MNIST convnet's second Conv2D (C = 32). With one channel
    that row is only kw values; there the copies go to an array laid out (p, q, c, n, i, j), each a
    run of out_w pixels, and cols is that array seen in the textbook's axis order (1.3 -> 0.4 ms for
    the convnet's first layer). Either way cols.reshape(n * out_h * out_w, kh * kw * C) is a view, as
    Conv2D needs: a column-major matrix in the second case, which BLAS reads as well. The same
    values, moved: equal to the textbook to the bit.
    """
    (kh, kw), (sh, sw), (oh, ow) = window, strides, out
    n, _, _, c = x.shape
    if c == 1:
        cols = np.empty((kh, kw, c, n, oh, ow), dtype=x.dtype)
        for p in range(kh):
            for q in range(kw):
                cols[p, q, 0] = x[:, p:p + sh * oh:sh, q:q + sw * ow:sw, 0]
        return cols.transpose(3, 4, 5, 0, 1, 2)
    views = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))  # (n, i, j, c, p, q), stride 1
    return views[:, :sh * oh:sh, :sw * ow:sw].transpose(0, 1, 2, 4, 5, 3).copy()


def tile_views(x: np.ndarray, pool_size: tuple[int, int]) -> list[np.ndarray]:
    """For windows that tile x (stride = pool size, no padding): one strided view per window position (p, q),
    in window order (row by row), each (n, out_h, out_w, C): view[n, i, j, c] = x[n, i*ph + p, j*pw + q, c].
    Rows and columns past the last whole window are in none of them (padding "valid" drops them)."""
    ph, pw = pool_size
    oh, ow = x.shape[1] // ph, x.shape[2] // pw
    return [x[:, p:ph * oh:ph, q:pw * ow:pw, :] for p in range(ph) for q in range(pw)]


def tiled_gradient(x_shape: tuple[int, ...], dtype: Any, pool_size: tuple[int, int]) -> np.ndarray:
    """An uninitialized dx for tile_views to fill, but for the rows and columns past the last whole window:
    those get 0 now (no window covers them), without zeroing the whole array first."""
    dx = np.empty(x_shape, dtype=dtype)
    dx[:, x_shape[1] - x_shape[1] % pool_size[0]:] = 0
    dx[:, :, x_shape[2] - x_shape[2] % pool_size[1]:] = 0
    return dx


def batch_pieces(x: np.ndarray) -> list[slice]:
    """The batch cut into pieces of about POOL_PIECE_BYTES of x, whole images each."""
    size = max(1, POOL_PIECE_BYTES // max(1, x[:1].nbytes))
    return [slice(start, start + size) for start in range(0, x.shape[0], size)]


def max_pool_forward(x: np.ndarray, pool_size: tuple[int, int]) -> np.ndarray:
    """MaxPooling2D.forward when its windows tile x: y = max over the window positions, one view of x each.

    No im2col copy: y = maximum(view at (0, 0), view at (0, 1), ...), pairwise in window order, as the
    textbook's max over the copied windows takes them; a few images at a time, so that a piece of x
    read for one position is still in the L2 cache for the next. 6.8 -> 2.3 ms a training step for
    the MNIST convnet's first pooling (2x2 over 128 x 26 x 26 x 32).
    """
    ph, pw = pool_size
    y = np.empty((x.shape[0], x.shape[1] // ph, x.shape[2] // pw, x.shape[3]), dtype=x.dtype)
    for piece in batch_pieces(x):
        views, y_piece = tile_views(x[piece], pool_size), y[piece]
        np.copyto(y_piece, views[0])
        for view in views[1:]:
            np.maximum(y_piece, view, out=y_piece)
    return y


def max_pool_backward(x: np.ndarray, y: np.ndarray, dy: np.ndarray, pool_size: tuple[int, int]) -> np.ndarray:
    """MaxPooling2D.backward when its windows tile x: dy goes to the first maximum of its window, in window order.

    The textbook's loop over window entries, on views of x and dx instead of im2col's copies: at each
    position, hit = (x there == y) and no earlier position has hit; dx there = hit * dy. No window
    overlaps another, so col2im's sum has one term a pixel: dx = 0 + hit * dy, the same bits (the 0 +
    turns a product's -0.0 into the textbook's +0.0). A few images at a time, as max_pool_forward:
    14.9 -> 5.8 ms a training step for the MNIST convnet's first pooling.
    """
    dx = tiled_gradient(x.shape, dy.dtype, pool_size)
    last = pool_size[0] * pool_size[1] - 1
    for piece in batch_pieces(x):
        y_piece, dy_piece, dx_piece = y[piece], dy[piece], dx[piece]
        hit = np.empty(y_piece.shape, dtype=bool)
        taken = np.zeros(y_piece.shape, dtype=bool)                           # has the window's maximum been met yet?
        for k, (x_at, dx_at) in enumerate(zip(tile_views(x[piece], pool_size), tile_views(dx_piece, pool_size))):
            np.equal(x_at, y_piece, out=hit)
            np.greater(hit, taken, out=hit)                                   # hit & ~taken
            if k < last:
                taken |= hit
            np.multiply(hit, dy_piece, out=dx_at)
        dx_piece += 0.0
    return dx


def avg_pool_forward(x: np.ndarray, pool_size: tuple[int, int]) -> np.ndarray:
    """AveragePooling2D.forward when its windows tile x: the sum of one view of x per window position, in
    window order from 0 as NumPy sums the textbook's copied windows, over ph * pw (every window is whole)."""
    views = tile_views(x, pool_size)
    total = views[0] + 0.0
    for view in views[1:]:
        total += view
    total /= x.dtype.type(pool_size[0] * pool_size[1])
    return total


def avg_pool_backward(dy: np.ndarray, x_shape: tuple[int, ...], pool_size: tuple[int, int]) -> np.ndarray:
    """AveragePooling2D.backward when its windows tile the input: each pixel of a window gets dy / (ph * pw)
    (+ 0, col2im's start), written into a view of dx per window position; no window overlaps another."""
    share = dy / dy.dtype.type(pool_size[0] * pool_size[1])
    dx = tiled_gradient(x_shape, share.dtype, pool_size)
    for dx_at in tile_views(dx, pool_size):
        np.add(share, 0.0, out=dx_at)
    return dx


def conv_input_gradient(dz: np.ndarray, W: np.ndarray, x_shape: tuple[int, ...],
                        strides: tuple[int, int]) -> np.ndarray:
    """Conv2D.backward's dx = col2im(dz @ W.T), the product done one kernel offset (p, q) at a time.

    The textbook's dcols = dz @ W.T has rows (n, i, j) and columns (p, q, c): col2im then adds, for
    each offset, runs of only C values, strided by kh * kw * C. Split by offset, the product gives
    one contiguous (n, i, j, c) block per (p, q), and col2im adds whole rows of the image at once:
    for the MNIST convnet's second Conv2D, col2im 4.5 -> 2.2 ms and the products 4.4 -> 5.4 ms
    (nine narrower ones), alone; its whole backward pass 20.4 -> 18.2 ms a training step. (Done a
    few images at a time, col2im would find the blocks in the L2 cache, but the step got slower:
    the layers around it then met fresh, unmapped memory in their own large arrays.) col2im's sums are the
    textbook's, in its order; the products are the same dot products, which BLAS may round
    differently in narrower matrices (tests: within 1e-6).
    """
    n, oh, ow, f = dz.shape
    kh, kw, c, _ = W.shape
    sh, sw = strides
    W_at = W.reshape(kh * kw, c, f).transpose(0, 2, 1)                        # (kh * kw, F, C): W[p, q].T
    blocks = np.matmul(dz.reshape(-1, f), W_at)                               # (kh * kw, n * oh * ow, C)
    dx = np.zeros(x_shape, dtype=blocks.dtype)
    for k, block in enumerate(blocks):
        p, q = divmod(k, kw)
        dx_at = dx[:, p:p + sh * oh:sh, q:q + sw * ow:sw, :]
        np.add(dx_at, block.reshape(dx_at.shape), out=dx_at)
    return dx

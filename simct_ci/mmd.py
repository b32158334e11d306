"""The MMD two-sample test of Model Equality Testing (Gao, Liang, Guestrin, ICLR 2025), as `gate.test: mmd`.

A second model-wise test beside the t-test on the classifier (stats.py). It compares the two stages' response
distributions directly, prompt by prompt, with a string kernel, so it sees changes of sampling diversity
(top-p, for instance) that move no similarity to the reference on average. bench/detection.py measures when
it wins and when it loses (docs/detection.md); it checks this module against the package `model-equality-testing`
(which needs torch, so it is not imported here).

Kernel: the package's cumulative k-spectrum kernel on Unicode code points, k = 5, normalised, on responses
truncated or padded to 1,000 characters, as the package does (so padding also carries the response's length).
Statistic: the package's MMD estimate over (prompt, response) pairs, where responses to different prompts have
kernel 0. p-value: labels permuted within each prompt, so the test is exact whenever the two stages' responses
to a prompt are exchangeable, i.e. when the candidate is the same deployment, with any number of prompts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

KERNEL = "5-spectrum"
SPECTRUM_ORDER = 5  # the package's default: every substring of 1..5 code points
MMD_LENGTH = 1000  # the package's L: characters per response
PAD = -1  # the package's padding code point
PERMUTATIONS = 1000  # at least: p-values resolve to 1 / 1001
RESOLUTION = 20  # and at least 20 / alpha, so the smallest p-value is alpha / 20 or less
SEED = 0  # fixed, so a rerun on the same responses gives the same p-value
BATCH = 100  # permutations scored at once: memory stays at BATCH x prompts x samples


@dataclass(frozen=True)
class MMDResult:
    statistic: float  # the observed MMD estimate
    p_value: float
    standardized: float  # (observed - permutation mean) / permutation sd: how unusual, on a familiar scale
    n_prompts: int


def permutations_for(alpha: float) -> int:
    """Enough permutations that a p-value can fall well below alpha, and that its Monte Carlo error is small."""
    return max(PERMUTATIONS, math.ceil(RESOLUTION / alpha))


# --- the kernel ---------------------------------------------------------------------------------------------


def char_codes(texts: Sequence[str], length: int = MMD_LENGTH) -> np.ndarray:
    """Unicode code points truncated or padded with PAD to `length`, as the package's unicode loading does."""
    codes = np.full((len(texts), length), PAD, dtype=np.int64)
    for row, text in enumerate(texts):
        points = np.frombuffer(text[:length].encode("utf-32-le"), dtype=np.uint32)
        codes[row, : len(points)] = points
    return codes


def spectrum_kernel(codes: np.ndarray, max_order: int = SPECTRUM_ORDER) -> np.ndarray:
    """The cumulative k-spectrum kernel: the sum over substrings s of 1..max_order units of #s(x) #s(y).

    Each order's substrings get dense ids (an order's id pairs the previous order's id with the next unit, so ids
    stay small and exact); per order, count vectors as a sparse matrix M give every pair's dot product as M M^T.
    """
    n, length = codes.shape
    _, units = np.unique(codes, return_inverse=True)
    units = units.reshape(n, length).astype(np.int64)
    alphabet = int(units.max()) + 1
    grams = units
    kernel = np.zeros((n, n))
    for order in range(1, max_order + 1):
        if order > 1:
            combined = grams[:, :-1] * alphabet + units[:, order - 1 :]
            _, dense = np.unique(combined.ravel(), return_inverse=True)
            grams = dense.reshape(n, -1)
        rows = np.repeat(np.arange(n), grams.shape[1])
        counts = sparse.csr_matrix((np.ones(grams.size), (rows, grams.ravel())), shape=(n, int(grams.max()) + 1))
        kernel += (counts @ counts.T).toarray()
    return kernel


def normalised(kernel: np.ndarray) -> np.ndarray:
    """k(x, y) / sqrt(k(x, x) k(y, y)), the package's normalisation (a zero self-similarity counts as 1)."""
    scale = np.sqrt(np.diag(kernel)).copy()
    scale[scale == 0] = 1.0
    return kernel / np.outer(scale, scale)


def prompt_gram(texts: Sequence[str]) -> np.ndarray:
    """One prompt's normalised kernel matrix among its responses."""
    return normalised(spectrum_kernel(char_codes(texts)))


# --- the statistic and its permutation p-value --------------------------------------------------------------


def stack_grams(grams: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-prompt kernel matrices of any sizes as one (prompts, S, S) array with a zero diagonal (self pairs
    never count), zero-padded to the largest size S, and the (prompts, S) mask of real responses."""
    size = max(g.shape[0] for g in grams)
    stacked = np.zeros((len(grams), size, size))
    present = np.zeros((len(grams), size), dtype=bool)
    for row, gram in enumerate(grams):
        stacked[row, : len(gram), : len(gram)] = gram
        present[row, : len(gram)] = True
    diagonal = np.arange(size)
    stacked[:, diagonal, diagonal] = 0.0
    return stacked, present


def mmd_statistics(grams: np.ndarray, candidate: np.ndarray, present: np.ndarray) -> np.ndarray:
    """The package's MMD estimate for each labelling: grams (prompts, S, S) with a zero diagonal, candidate
    (labellings, prompts, S) marking the candidate's responses (Y), the other present ones being the reference (X).

    Only pairs within a prompt count, each sum over its number of within-prompt pairs. With z the candidate
    indicator and G symmetric: X pairs sum 1'G1 - 2 z'G1 + z'Gz, XY pairs z'G1 - z'Gz, Y pairs z'Gz. Every
    labelling of one call has the same counts per prompt, so the normalisers are shared. A side with a single
    response per prompt has no within-side pair: its term is left out (the package's is 0/0).
    """
    z = candidate.astype(float)
    to_all = np.einsum("lns,ns->ln", z, grams.sum(axis=2))  # z'G1
    within = np.einsum("lns,nst,lnt->ln", z, grams, z)  # z'Gz
    total = grams.sum(axis=(1, 2))  # 1'G1
    y_count = candidate[0].sum(axis=1)
    x_count = present.sum(axis=1) - y_count
    statistic = -2 * (to_all - within).sum(axis=1) / (x_count * y_count).sum()
    x_pairs, y_pairs = (x_count * (x_count - 1)).sum(), (y_count * (y_count - 1)).sum()
    if x_pairs:
        statistic += (total - 2 * to_all + within).sum(axis=1) / x_pairs
    if y_pairs:
        statistic += within.sum(axis=1) / y_pairs
    return statistic


def permuted_labels(candidate: np.ndarray, present: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` labellings drawn uniformly within each prompt: its candidate count among its present responses."""
    keys = rng.random((count, *present.shape))
    keys[:, ~present] = np.inf  # padding sorts last, so it is never drawn
    ranks = np.argsort(np.argsort(keys, axis=2), axis=2)
    return ranks < candidate.sum(axis=1)[None, :, None]


def permutation_test(
    grams: np.ndarray,
    candidate: np.ndarray,
    present: np.ndarray,
    permutations: int = PERMUTATIONS,
    rng: np.random.Generator | None = None,
) -> MMDResult:
    """Observed statistic (candidate: (prompts, S)) against `permutations` within-prompt relabellings:
    p = (1 + #{permuted >= observed}) / (1 + permutations), exact under exchangeability."""
    rng = rng if rng is not None else np.random.default_rng(SEED)
    observed = float(mmd_statistics(grams, candidate[None], present)[0])
    permuted = np.concatenate(
        [
            mmd_statistics(grams, permuted_labels(candidate, present, min(BATCH, permutations - start), rng), present)
            for start in range(0, permutations, BATCH)
        ]
    )
    # A relabelling that only reorders the observed sets sums the same numbers in another order: allow rounding.
    exceed = np.count_nonzero(permuted >= observed - 1e-12 * abs(observed))
    spread = float(permuted.std(ddof=1)) if permutations > 1 else 0.0
    standardized = (observed - float(permuted.mean())) / spread if spread > 0 else 0.0
    return MMDResult(observed, (1 + exceed) / (1 + permutations), standardized, len(grams))


def mmd_test(
    reference: Sequence[Sequence[str]], candidate: Sequence[Sequence[str]], permutations: int = PERMUTATIONS
) -> MMDResult:
    """Per prompt, the reference's and the candidate's responses (both non-empty), in the same prompt order."""
    grams, present = stack_grams([prompt_gram([*r, *c]) for r, c in zip(reference, candidate, strict=True)])
    labels = np.zeros_like(present)
    for row, (r, c) in enumerate(zip(reference, candidate, strict=True)):
        labels[row, len(r) : len(r) + len(c)] = True
    return permutation_test(grams, labels, present, permutations)

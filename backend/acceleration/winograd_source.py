"""C source of the Winograd F(m x m, 3 x 3) input and output transforms, generated for one tile size.

Why generated: the transforms are winograd.transform_matrices(m), built exactly from the
Toom-Cook points, and the C code should be those matrices and nothing else. Each matrix becomes
a one-dimensional transform with its coefficients as literals (zeros dropped, ones as plain adds)
and the matrices' symmetry factored out: rows of B^T that differ only in the sign of some terms
share their two halves (y = e + o, y' = e - o), and columns of A^T that are equal or opposite in
every row are summed and subtracted once. A tile is transformed along rows, then columns: read
straight from the layer's channels_last parts (their reflect padding read in place) and written
in the layout the channel-mixing products read (input), or read from their output and written
into the output map with the bias and the ReLU (output). Plain C99, no OpenMP: callers split a strip's tiles [cell_lo, cell_hi) between
threads (native.py).
"""
from __future__ import annotations

import torch

#: channels a tile's transform works on at once (its temporaries then stay in L1)
CHANNEL_BLOCK = 64

_MATRIX = list[list[float]]


def _literal(value: float) -> str:
    if float(torch.tensor(value, dtype=torch.float32)) != value:
        raise ValueError(f"transform coefficient {value!r} is not exact in float32")
    return f"{value!r}f"


def _linear(terms: list[tuple[float, str]]) -> str:
    """sum of coefficient * name, written with as few operations as the coefficients allow."""
    text = ""
    for coefficient, name in terms:
        sign = "-" if coefficient < 0 else "+"
        magnitude = abs(coefficient)
        term = name if magnitude == 1 else f"{_literal(magnitude)} * {name}"
        text = (f"-{term}" if sign == "-" else term) if not text else f"{text} {sign} {term}"
    return text or "0.f"


def _row_pairs(matrix: _MATRIX) -> list[tuple[int, int, list[int], list[int]]]:
    """Row pairs (r, s) with s = e - o where r = e + o: on every column their coefficients are
    equal (the column is in e) or opposite (in o), and both kinds occur."""
    pairs, used = [], set()
    for r, row in enumerate(matrix):
        for s in range(r + 1, len(matrix)):
            if r in used or s in used:
                continue
            other = matrix[s]
            even = [j for j, v in enumerate(row) if v != 0 and other[j] == v]
            odd = [j for j, v in enumerate(row) if v != 0 and other[j] == -v]
            if even and odd and len(even) + len(odd) == sum(v != 0 for v in row) == sum(v != 0 for v in other):
                pairs.append((r, s, even, odd))
                used.update((r, s))
    return pairs


def _column_pairs(matrix: _MATRIX) -> list[tuple[int, int]]:
    """Column pairs (j, k) equal or opposite in every row, each kind in some row."""
    columns = list(zip(*matrix))
    pairs, used = [], set()
    for j, first in enumerate(columns):
        for k in range(j + 1, len(columns)):
            if j in used or k in used or not any(first):
                continue
            second = columns[k]
            same = all(a == b for a, b in zip(first, second) if a or b)
            flipped = all(a == -b for a, b in zip(first, second) if a or b)
            both = all((a == b or a == -b) for a, b in zip(first, second))
            if both and not same and not flipped and all((a == 0) == (b == 0) for a, b in zip(first, second)):
                pairs.append((j, k))
                used.update((j, k))
    return pairs


def transform_function(name: str, matrix: _MATRIX) -> str:
    """C function y[r][c] = sum over i of matrix[r][i] * x_i[c], for c < n."""
    rows, cols = len(matrix), len(matrix[0])
    body = [f"        const float {', '.join(f'v{i} = x{i}[c]' for i in range(cols))};"]
    names = {i: f"v{i}" for i in range(cols)}  # how column i's value is read in a term
    column_terms: list[list[tuple[float, str]]] = [[] for _ in range(rows)]
    paired = set()
    for j, k in _column_pairs(matrix):  # a v_j + b v_k with b = +-a: a (v_j +- v_k)
        body.append(f"        const float s{j}_{k} = v{j} + v{k}, d{j}_{k} = v{j} - v{k};")
        for r, row in enumerate(matrix):
            if row[j] != 0:
                column_terms[r].append((row[j], f"s{j}_{k}" if row[k] == row[j] else f"d{j}_{k}"))
        paired.update((j, k))
    for r, row in enumerate(matrix):
        column_terms[r] += [(v, names[i]) for i, v in enumerate(row) if v != 0 and i not in paired]
    done = set()
    if not paired:
        for r, s, even, odd in _row_pairs(matrix):
            e = _linear([(matrix[r][j], names[j]) for j in even])
            o = _linear([(matrix[r][j], names[j]) for j in odd])
            body.append(f"        const float e{r} = {e}, o{r} = {o};")
            body.append(f"        y[{r}][c] = e{r} + o{r};")
            body.append(f"        y[{s}][c] = e{r} - o{r};")
            done.update((r, s))
    for r in range(rows):
        if r not in done:
            body.append(f"        y[{r}][c] = {_linear(column_terms[r])};")
    params = ", ".join(f"const float *restrict x{i}" for i in range(cols))
    return (f"static inline void {name}({params}, float (*restrict y)[CHANNEL_BLOCK], int n) {{\n"
            f"    for (int c = 0; c < n; c++) {{\n" + "\n".join(body) + "\n    }\n}\n")


#: The FFC blocks' bf16 layer epilogue, beside the transforms in the same library (see
#: block_epilogue.py): x = relu?(x) (+ residual) in place, and x reflect-padded for the next
#: layer's convolutions, in one pass where torch needs three. bf16 values are
#: widened exactly and the sum rounded to nearest even, as torch's bf16 add does (NaNs quieted).
EPILOGUE_SOURCE = r"""
#include <string.h>
static inline float bf16_widen(uint16_t h) { uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f; }
static inline uint16_t bf16_round(float f) {
    uint32_t u; memcpy(&u, &f, 4);
    const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16, quiet = (u >> 16) | 0x40u;
    return (uint16_t)(((u & 0x7fffffffu) > 0x7f800000u) ? quiet : rounded);
}

/* Interior rows [row_lo, row_hi) (of height) of padded ((height + 2 pad) x (width + 2 pad) x
 * channels, channels_last) from y = relu?(x) (+ residual; NULL: none), bf16 bit patterns, with y
 * written back into x's row (each row reads only itself, so threads may share the map); the
 * border rows are copies of finished interior rows, which the caller makes afterwards. A row's
 * interior is one contiguous run (a flat loop the compiler vectorises); its border columns are
 * copied from that run. */
static void bf16_epilogue_run(const uint16_t *restrict in, const uint16_t *restrict add, int relu, int64_t n,
                              uint16_t *restrict target) {
    if (add) {
        for (int64_t k = 0; k < n; k++) {
            float a = bf16_widen(in[k]);
            if (relu) a = a < 0.f ? 0.f : a;
            target[k] = bf16_round(a + bf16_widen(add[k]));
        }
    } else if (relu) { /* negative numbers (not NaNs) to +0 */
        for (int64_t k = 0; k < n; k++) {
            const uint16_t h = in[k];
            target[k] = ((h & 0x8000u) && (h & 0x7fffu) <= 0x7f80u) ? (uint16_t)0 : h;
        }
    } else {
        memcpy(target, in, (size_t)n * 2);
    }
}

EXPORT void bf16_relu_add_reflect_pad(uint16_t *x, const uint16_t *residual, int relu, int64_t height,
                                      int64_t width, int64_t channels, int64_t pad, uint16_t *padded,
                                      int64_t row_lo, int64_t row_hi) {
    const int64_t padded_width = width + 2 * pad, run = width * channels;
    for (int64_t r = row_lo; r < row_hi; r++) {
        uint16_t *row = padded + ((r + pad) * padded_width + pad) * channels; /* source column 0 */
        bf16_epilogue_run(x + r * run, residual ? residual + r * run : 0, relu, run, row);
        for (int64_t p = 0; p < pad; p++) {
            memcpy(row - (p + 1) * channels, row + (p + 1) * channels, (size_t)channels * 2);
            memcpy(row + (width + p) * channels, row + (width - 2 - p) * channels, (size_t)channels * 2);
        }
        if (relu || residual) memcpy(x + r * run, row, (size_t)run * 2);
    }
}
"""


def _points(base: str, step: str, count: int) -> str:
    return ", ".join(base if i == 0 else f"{base} + {i} * {step}" for i in range(count))


def source(tile: int, a_t: torch.Tensor, b_t: torch.Tensor) -> str:
    """The C source for F(tile x tile, 3 x 3) with output and input transforms A^T and B^T."""
    size = tile + 2
    if tuple(a_t.shape) != (tile, size) or tuple(b_t.shape) != (size, size):
        raise ValueError(f"transform matrices of the wrong shape for F({tile}, 3)")
    input_rows = transform_function("input_rows", b_t.tolist())
    output_rows = transform_function("output_rows", a_t.tolist())
    mixed_rows = _points("p", f"{size} * plane", size)
    reflected_rows = ", ".join(f"q + row_start[{i}]" for i in range(size))
    return f"""/* Winograd F({tile}x{tile}, 3x3) transforms, float32, channels_last: generated by winograd_source.py;
 * the bf16 block epilogue follows them. */
#include <stdint.h>

#define TILE {tile}
#define SIZE {size}
#define CHANNEL_BLOCK {CHANNEL_BLOCK}
#if defined(_WIN32)
#define EXPORT __declspec(dllexport)
#else
#define EXPORT __attribute__((visibility("default")))
#endif

{input_rows}
{output_rows}
/* A padded position's source row (or column): reflect padding by 1 of a side of n; positions past
 * the halo (which feed only outputs that are cut off) are clamped into the map. */
static inline int64_t reflected(int64_t position, int64_t n) {{
    int64_t r = position - 1;
    if (r < 0) r = -r;
    if (r >= n) r = 2 * (n - 1) - r;
    return r < 0 ? 0 : (r >= n ? n - 1 : r);
}}

/* spectra[(a, b), cell, c] = sum over (i, j) of B^T[a][i] B^T[b][j] padded[TILE r + i, TILE q + j, c]
 * for cell = r tile_cols + q of the strip, spectra (SIZE^2, cells, channels) contiguous, where
 * padded is the sources' channels concatenated and reflect-padded by 1, read in place:
 * source k is a contiguous (height, width, source_channels[k]) channels_last image; the strip
 * starts at tile row first_tile_row. */
EXPORT void winograd_input_reflected(const float *const *sources, const int64_t *source_channels,
                                     int64_t source_count, int64_t height, int64_t width, int64_t first_tile_row,
                                     int64_t tile_cols, int64_t cells, float *spectra, int64_t cell_lo,
                                     int64_t cell_hi) {{
    float rows[SIZE][SIZE][CHANNEL_BLOCK]; /* [column j][row-transformed a] */
    float both[SIZE][CHANNEL_BLOCK];
    int64_t channels = 0;
    for (int64_t k = 0; k < source_count; k++) channels += source_channels[k];
    for (int64_t cell = cell_lo; cell < cell_hi; cell++) {{
        const int64_t tile_row = first_tile_row + cell / tile_cols, tile_col = cell % tile_cols;
        int64_t row_of[SIZE], col_of[SIZE];
        for (int i = 0; i < SIZE; i++) {{
            row_of[i] = reflected(TILE * tile_row + i, height);
            col_of[i] = reflected(TILE * tile_col + i, width);
        }}
        int64_t offset = 0;
        for (int64_t k = 0; k < source_count; k++) {{
            const int64_t own = source_channels[k];
            const float *source = sources[k];
            int64_t row_start[SIZE];
            for (int i = 0; i < SIZE; i++) row_start[i] = row_of[i] * width * own;
            for (int64_t c0 = 0; c0 < own; c0 += CHANNEL_BLOCK) {{
                const int n = own - c0 < CHANNEL_BLOCK ? (int)(own - c0) : CHANNEL_BLOCK;
                for (int j = 0; j < SIZE; j++) {{
                    const float *q = source + col_of[j] * own + c0;
                    input_rows({reflected_rows}, rows[j], n);
                }}
                for (int a = 0; a < SIZE; a++) {{
                    input_rows({", ".join(f"rows[{j}][a]" for j in range(size))}, both, n);
                    for (int b = 0; b < SIZE; b++) {{
                        float *out = spectra + ((int64_t)(a * SIZE + b) * cells + cell) * channels + offset + c0;
                        for (int c = 0; c < n; c++) out[c] = both[b][c];
                    }}
                }}
            }}
            offset += own;
        }}
    }}
}}

/* out[TILE r + p, TILE q + s, o] = relu?(sum over (a, b) of A^T[p][a] A^T[s][b] mixed[(a, b), cell, o] + bias[o]);
 * `mixed` is (SIZE^2, cells, out_channels), contiguous; `out` points at the strip's first output row,
 * channels_last with the given row stride and out_channels floats per column; `bias` may be NULL. */
EXPORT void winograd_output(const float *mixed, int64_t cells, int64_t out_channels, const float *bias, int relu,
                            float *out, int64_t row_stride, int64_t tile_cols, int64_t cell_lo, int64_t cell_hi) {{
    float cols[SIZE][TILE][CHANNEL_BLOCK]; /* [column b][row-transformed p] */
    float both[TILE][CHANNEL_BLOCK];
    const int64_t plane = cells * out_channels;
    for (int64_t cell = cell_lo; cell < cell_hi; cell++) {{
        float *corner = out + TILE * (cell / tile_cols) * row_stride + TILE * (cell % tile_cols) * out_channels;
        const float *first = mixed + cell * out_channels;
        for (int64_t c0 = 0; c0 < out_channels; c0 += CHANNEL_BLOCK) {{
            const int n = out_channels - c0 < CHANNEL_BLOCK ? (int)(out_channels - c0) : CHANNEL_BLOCK;
            for (int b = 0; b < SIZE; b++) {{
                const float *p = first + b * plane + c0; /* mixed[(a, b)] is p + SIZE a plane */
                output_rows({mixed_rows}, cols[b], n);
            }}
            for (int p = 0; p < TILE; p++) {{
                output_rows({", ".join(f"cols[{b}][p]" for b in range(size))}, both, n);
                for (int s = 0; s < TILE; s++) {{
                    float *target = corner + p * row_stride + s * out_channels + c0;
                    const float *value = both[s];
                    if (bias != 0 && relu) {{
                        for (int c = 0; c < n; c++) {{ const float v = value[c] + bias[c0 + c]; target[c] = v < 0.f ? 0.f : v; }}
                    }} else if (bias != 0) {{
                        for (int c = 0; c < n; c++) target[c] = value[c] + bias[c0 + c];
                    }} else if (relu) {{
                        for (int c = 0; c < n; c++) {{ const float v = value[c]; target[c] = v < 0.f ? 0.f : v; }}
                    }} else {{
                        for (int c = 0; c < n; c++) target[c] = value[c];
                    }}
                }}
            }}
        }}
    }}
}}
""" + EPILOGUE_SOURCE

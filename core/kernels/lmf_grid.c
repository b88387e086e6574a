/* LMF's per-pixel decoder for a grid of output pixels, fused: one pass per output pixel
 * through the 4 ensemble members, every render layer, the gathers of the modulations and
 * the area-weighted blend, straight from the per-code table, with the activations of a member in registers (D floats).
 *
 * Built at run time by core/kernels/__init__.py (cc -O3 -march=native, once per machine and
 * source; the library is cached) and called through ctypes, which releases the GIL. The maths
 * is LMF.decode_indexed's and render_tile's blend (core/models/lmf.py, core/render.py):
 *
 *   member (a, b) of output pixel (r, c), code row k = rbase[a][r] + coff[b][c]:
 *     h_0 = ry[a][r] w_y + rx[b][c] w_x + const            (const: bias and cell terms)
 *     h_l = relu((W_l h_{l-1} + b_l) * s_l[k] + t_l[k])     l = 0..L-1 (no W_0: h_0 above)
 *     f   = W_out h_{L-1} + b_out (+ rgb[k] with the skip)
 *   out[r][c] = sum over members of  S_opposite / S_total * f   (S = |ry * rx| + 1e-9)
 *
 * D (the render width) is fixed at compile time. Where it is a power of two (the bundled
 * model's 16) the activations of the (up to) 4 members of a pixel are updated side by side
 * (independent FMA chains per layer); the output layer is linear, so it is applied once to
 * the weighted sum of the members' last activations:
 *   sum_t w_t (W_out h_t + b_out + rgb_t) = W_out (sum_t w_t h_t) + b_out sum_t w_t
 *                                           + sum_t w_t rgb_t.
 * On AVX2 without AVX-512 and D of 8 or 16, that is written with 8-float intrinsics: the
 * members' activations wait in a small aligned array and each input unit is broadcast from
 * it, so the accumulators (4 members x D/8 registers) and one layer row of weights fit the 16
 * vector registers. The GCC vector form of the same loop (vectors of D floats, an element
 * taken out of a register per input unit) spills on AVX2 (docs/BENCHMARKS.md, "The LMF
 * kernel on AVX2"); it stays the path for AVX-512, where a vector of 16 floats is one of 32
 * registers. Other widths take plain loops.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#ifndef D
#define D 16
#endif

#if defined(__AVX2__) && defined(__FMA__) && !defined(__AVX512F__) && (D == 8 || D == 16)
#define AVX2_PATH 1
#include <immintrin.h>
#elif (D & (D - 1)) == 0 && D >= 4
#define VECTOR 1
typedef float vec __attribute__((vector_size(D * sizeof(float))));
typedef int32_t ivec __attribute__((vector_size(D * sizeof(float))));

static inline vec load(const float *p)
{
    vec v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline vec relu(vec v)
{
    ivec keep = v > 0.f;
    return (vec)((ivec)v & keep);
}
#endif

/* The area weights of the 4 neighbours of a pixel (dy, dx) = (-,-), (-,+), (+,-), (+,+):
 * the area of the diagonally opposite one over the total; 1 without the ensemble. */
static inline void area_weights(int n, float y0, float y1, float x0, float x1, float *wgt)
{
    if (n != 2) {
        wgt[0] = 1.f;
        return;
    }
    float s[4] = {fabsf(y0 * x0) + 1e-9f, fabsf(y0 * x1) + 1e-9f,
                  fabsf(y1 * x0) + 1e-9f, fabsf(y1 * x1) + 1e-9f};
    float tot = s[0] + s[1] + s[2] + s[3];
    for (int t = 0; t < 4; t++)
        wgt[t] = s[3 - t] / tot;
}

#ifdef VECTOR
/* The vector path for one pixel's M members (M a constant once inlined: the loops over the
 * members unroll and their activations stay in registers). */
static inline __attribute__((always_inline)) void
members_vec(const int M, const float *const *rows, const float *ys, const float *xs,
            const float *wgt, int layers, const float *win, const float *cst,
            const float *wht, const float *bh, const float *wo, const float *bo, float *res)
{
    const vec wy = load(win), wx = load(win + D), c0 = load(cst);
    vec h[4];
    for (int m = 0; m < M; m++)
        h[m] = relu((ys[m] * wy + xs[m] * wx + c0) * load(rows[m]) + load(rows[m] + D));
    for (int l = 1; l < layers; l++) {
        const float *w = wht + (int64_t)(l - 1) * D * D;
        const vec bias = load(bh + (l - 1) * D);
        vec g[4];
        for (int m = 0; m < M; m++)
            g[m] = bias;
        for (int i = 0; i < D; i++) {
            const vec wi = load(w + i * D);
            for (int m = 0; m < M; m++)
                g[m] += wi * h[m][i];
        }
        for (int m = 0; m < M; m++)
            h[m] = relu(g[m] * load(rows[m] + 2 * l * D) + load(rows[m] + (2 * l + 1) * D));
    }
    vec hs = wgt[0] * h[0];
    float wsum = wgt[0];
    for (int m = 1; m < M; m++) {
        hs += wgt[m] * h[m];
        wsum += wgt[m];
    }
    for (int o = 0; o < 3; o++) {
        vec p = load(wo + o * D) * hs;
        float v = 0.f;
        for (int j = 0; j < D; j++)
            v += p[j];
        res[o] = v + bo[o] * wsum;
    }
}
#endif

#ifdef AVX2_PATH
#define Q (D / 8) /* 8-float registers per activation vector */
/* The AVX2 path for one pixel's M members (see the head of this file). */
static inline __attribute__((always_inline)) void
members_avx2(const int M, const float *const *rows, const float *ys, const float *xs,
             const float *wgt, int layers, const float *win, const float *cst,
             const float *wht, const float *bh, const float *wo, const float *bo, float *res)
{
    float h[4][D] __attribute__((aligned(32)));
    const __m256 zero = _mm256_setzero_ps();
    for (int m = 0; m < M; m++) {
        const __m256 y = _mm256_set1_ps(ys[m]), x = _mm256_set1_ps(xs[m]);
        for (int q = 0; q < Q; q++) {
            __m256 v = _mm256_fmadd_ps(y, _mm256_loadu_ps(win + 8 * q),
                                       _mm256_fmadd_ps(x, _mm256_loadu_ps(win + D + 8 * q),
                                                       _mm256_loadu_ps(cst + 8 * q)));
            v = _mm256_fmadd_ps(v, _mm256_loadu_ps(rows[m] + 8 * q),
                                _mm256_loadu_ps(rows[m] + D + 8 * q));
            _mm256_store_ps(h[m] + 8 * q, _mm256_max_ps(v, zero));
        }
    }
    for (int l = 1; l < layers; l++) {
        const float *w = wht + (int64_t)(l - 1) * D * D, *b = bh + (l - 1) * D;
        __m256 g[4][Q];
        for (int m = 0; m < M; m++)
            for (int q = 0; q < Q; q++)
                g[m][q] = _mm256_loadu_ps(b + 8 * q);
#pragma GCC unroll 16
        for (int i = 0; i < D; i++) {
            __m256 wi[Q];
            for (int q = 0; q < Q; q++)
                wi[q] = _mm256_loadu_ps(w + i * D + 8 * q);
            for (int m = 0; m < M; m++) {
                const __m256 hi = _mm256_broadcast_ss(&h[m][i]);
                for (int q = 0; q < Q; q++)
                    g[m][q] = _mm256_fmadd_ps(wi[q], hi, g[m][q]);
            }
        }
        for (int m = 0; m < M; m++)
            for (int q = 0; q < Q; q++) {
                const float *mod = rows[m] + 2 * l * D + 8 * q;
                __m256 v = _mm256_fmadd_ps(g[m][q], _mm256_loadu_ps(mod),
                                           _mm256_loadu_ps(mod + D));
                _mm256_store_ps(h[m] + 8 * q, _mm256_max_ps(v, zero));
            }
    }
    __m256 hs[Q];
    float wsum = 0.f;
    for (int q = 0; q < Q; q++)
        hs[q] = zero;
    for (int m = 0; m < M; m++) {
        const __m256 wm = _mm256_set1_ps(wgt[m]);
        for (int q = 0; q < Q; q++)
            hs[q] = _mm256_fmadd_ps(wm, _mm256_load_ps(h[m] + 8 * q), hs[q]);
        wsum += wgt[m];
    }
    for (int o = 0; o < 3; o++) {
        __m256 p = _mm256_mul_ps(_mm256_loadu_ps(wo + o * D), hs[0]);
        for (int q = 1; q < Q; q++)
            p = _mm256_fmadd_ps(_mm256_loadu_ps(wo + o * D + 8 * q), hs[q], p);
        __m128 a = _mm_add_ps(_mm256_castps256_ps128(p), _mm256_extractf128_ps(p, 1));
        a = _mm_add_ps(a, _mm_movehl_ps(a, a));
        a = _mm_add_ss(a, _mm_shuffle_ps(a, a, 1));
        res[o] = _mm_cvtss_f32(a) + bo[o] * wsum;
    }
}
#endif

/* table: [codes][stride], LMF's code features: per layer l the D scales at 2 l D and the D
 * shifts at (2 l + 1) D, then (with the skip, rgb != 0) the code's colour at 2 L D;
 * rbase: [n][th] int64; coff: [n][tw] int64; ry: [n][th]; rx: [n][tw];
 * win: [2][D] (the first layer's weights for the relative y and x); cst: [D];
 * wht: [L-1][D][D] hidden weights, transposed (wht[l][k][j] = W_{l+1}[j][k]); bh: [L-1][D];
 * wo: [3][D]; bo: [3]; out: [th][tw][3]. n is 2 with the local ensemble, else 1. */
void lmf_grid(const float *table, int64_t stride, int layers, int rgb,
              const int64_t *rbase, const int64_t *coff, const float *ry, const float *rx,
              int n, int64_t th, int64_t tw, const float *win, const float *cst,
              const float *wht, const float *bh, const float *wo, const float *bo,
              float *out)
{
    const int members = n * n;
    for (int64_t r = 0; r < th; r++) {
        const float y0 = ry[r], y1 = n == 2 ? ry[th + r] : 0.f;
        for (int64_t c = 0; c < tw; c++) {
            const float x0 = rx[c], x1 = n == 2 ? rx[tw + c] : 0.f;
            float wgt[4];
            area_weights(n, y0, y1, x0, x1, wgt);
            const float *rows[4];
            float ys[4], xs[4];
            for (int m = 0; m < members; m++) {
                int a = m / n, b = m % n;
                rows[m] = table + (rbase[a * th + r] + coff[b * tw + c]) * stride;
                ys[m] = a ? y1 : y0;
                xs[m] = b ? x1 : x0;
            }
            float res[3];
#if defined(AVX2_PATH)
            if (members == 4)
                members_avx2(4, rows, ys, xs, wgt, layers, win, cst, wht, bh, wo, bo, res);
            else
                members_avx2(1, rows, ys, xs, wgt, layers, win, cst, wht, bh, wo, bo, res);
#elif defined(VECTOR)
            if (members == 4)
                members_vec(4, rows, ys, xs, wgt, layers, win, cst, wht, bh, wo, bo, res);
            else
                members_vec(1, rows, ys, xs, wgt, layers, win, cst, wht, bh, wo, bo, res);
#else
            res[0] = res[1] = res[2] = 0.f;
            for (int m = 0; m < members; m++) {
                float h[D], g[D];
                for (int j = 0; j < D; j++) {
                    float v = (ys[m] * win[j] + xs[m] * win[D + j] + cst[j]) * rows[m][j]
                              + rows[m][D + j];
                    h[j] = v > 0.f ? v : 0.f;
                }
                for (int l = 1; l < layers; l++) {
                    const float *w = wht + (int64_t)(l - 1) * D * D;
                    for (int j = 0; j < D; j++)
                        g[j] = bh[(l - 1) * D + j];
                    for (int i = 0; i < D; i++)
                        for (int j = 0; j < D; j++)
                            g[j] += w[i * D + j] * h[i];
                    for (int j = 0; j < D; j++) {
                        float v = g[j] * rows[m][2 * l * D + j] + rows[m][(2 * l + 1) * D + j];
                        h[j] = v > 0.f ? v : 0.f;
                    }
                }
                for (int o = 0; o < 3; o++) {
                    float v = bo[o];
                    for (int j = 0; j < D; j++)
                        v += wo[o * D + j] * h[j];
                    res[o] += wgt[m] * v;
                }
            }
#endif
            if (rgb) {
                for (int m = 0; m < members; m++)
                    for (int o = 0; o < 3; o++)
                        res[o] += wgt[m] * rows[m][2 * layers * D + o];
            }
            float *dst = out + (r * tw + c) * 3;
            dst[0] = res[0];
            dst[1] = res[1];
            dst[2] = res[2];
        }
    }
}

/* The vector bodies of the narrow kernels for 16 vector registers of 256 bits (x86-64-v3:
 * AVX2 and FMA, without AVX-512), for _narrow.pxi's dots3x2 and strip4x1, which set up
 * their sums, add the last entries and store the results themselves.
 *
 * Written with intrinsics because GCC's own vectorization of those loops is not stable at
 * this level: it kept strip4x1's float64 loop scalar (32 scalar multiply-adds a row, sums
 * on the stack: 5 x OpenBLAS's time) and loaded each row of X once per use in dots3x2.
 *
 * Each vector holds consecutive lanes of the ``lanes`` partial sums that _narrow.pxi keeps
 * per dot product (8 for float64, 16 for float32: two vectors each), and each lane takes a
 * fused multiply-add per entry in order, as the loops of the AVX-512 build do: the same
 * roundings in the same order, so the same bits at every level. FASTNMF_AVX2_KERNELS says
 * whether this build has them; without it the functions are never called.
 */
#ifndef FASTNMF_NARROW16_H
#define FASTNMF_NARROW16_H

#if defined(__AVX2__) && defined(__FMA__) && !defined(__AVX512F__)
#define FASTNMF_AVX2_KERNELS 1
#include <immintrin.h>

/* Keeps a loaded vector in a register: else GCC folds the load into each multiply-add that
 * uses it (a row of X in dots3x2 loaded twice: 8 loads for 6 multiply-adds). */
#if defined(__GNUC__)
#define FASTNMF_HOLD(v) __asm__("" : "+x"(v))
#else
#define FASTNMF_HOLD(v) ((void) 0)
#endif

/* s<r><t>[l] = sum over c < end, c = l mod lanes, of x_r[c] h_t[c] (r < 3, t < 2), from
 * zero; end a multiple of the lanes. 12 sums in registers, the 2 vectors of H and one of
 * X at a time: 15 registers, 5 loads for 6 multiply-adds. */
#define FASTNMF_DOTS3X2(NAME, T, V, W, LOAD, STORE, FMA, ZERO)                        \
static void NAME(const T* x0, const T* x1, const T* x2, const T* h0, const T* h1,     \
                 Py_ssize_t end, T* s00, T* s01, T* s10, T* s11, T* s20, T* s21)      \
{                                                                                     \
    V a00 = ZERO(), a01 = ZERO(), a10 = ZERO(), a11 = ZERO(), a20 = ZERO();           \
    V a21 = ZERO(), b00 = ZERO(), b01 = ZERO(), b10 = ZERO(), b11 = ZERO();           \
    V b20 = ZERO(), b21 = ZERO(), g0, g1, x;                                          \
    for (Py_ssize_t c = 0; c < end; c += 2 * W) {                                     \
        g0 = LOAD(h0 + c);                                                            \
        g1 = LOAD(h1 + c);                                                            \
        x = LOAD(x0 + c); FASTNMF_HOLD(x);                                            \
        a00 = FMA(x, g0, a00); a01 = FMA(x, g1, a01);                                 \
        x = LOAD(x1 + c); FASTNMF_HOLD(x);                                            \
        a10 = FMA(x, g0, a10); a11 = FMA(x, g1, a11);                                 \
        x = LOAD(x2 + c); FASTNMF_HOLD(x);                                            \
        a20 = FMA(x, g0, a20); a21 = FMA(x, g1, a21);                                 \
        g0 = LOAD(h0 + c + W);                                                        \
        g1 = LOAD(h1 + c + W);                                                        \
        x = LOAD(x0 + c + W); FASTNMF_HOLD(x);                                        \
        b00 = FMA(x, g0, b00); b01 = FMA(x, g1, b01);                                 \
        x = LOAD(x1 + c + W); FASTNMF_HOLD(x);                                        \
        b10 = FMA(x, g0, b10); b11 = FMA(x, g1, b11);                                 \
        x = LOAD(x2 + c + W); FASTNMF_HOLD(x);                                        \
        b20 = FMA(x, g0, b20); b21 = FMA(x, g1, b21);                                 \
    }                                                                                 \
    STORE(s00, a00); STORE(s00 + W, b00); STORE(s01, a01); STORE(s01 + W, b01);       \
    STORE(s10, a10); STORE(s10 + W, b10); STORE(s11, a11); STORE(s11 + W, b11);       \
    STORE(s20, a20); STORE(s20 + W, b20); STORE(s21, a21); STORE(s21 + W, b21);       \
}

/* a<t>[c] = sum over j < w, in order from zero, of F[t ldf + j] X[j ld + c] (t < 4,
 * c < lanes). 8 sums in registers, a row's lanes of X (2 vectors) and the 4 values of F
 * broadcast: 14 registers, 6 loads for 8 multiply-adds. */
#define FASTNMF_STRIP4X1(NAME, T, V, W, LOAD, STORE, FMA, ZERO, BCAST)                   \
static void NAME(const T* X, Py_ssize_t w, Py_ssize_t ld, const T* F, Py_ssize_t ldf,     \
                 T* a0, T* a1, T* a2, T* a3)                                             \
{                                                                                        \
    V p0 = ZERO(), p1 = ZERO(), p2 = ZERO(), p3 = ZERO();                                \
    V q0 = ZERO(), q1 = ZERO(), q2 = ZERO(), q3 = ZERO();                                \
    for (Py_ssize_t j = 0; j < w; j++) {                                                 \
        const T* x = X + j * ld;                                                         \
        V u = LOAD(x), v = LOAD(x + W), f;                                               \
        f = BCAST(F + j); p0 = FMA(f, u, p0); q0 = FMA(f, v, q0);                        \
        f = BCAST(F + ldf + j); p1 = FMA(f, u, p1); q1 = FMA(f, v, q1);                  \
        f = BCAST(F + 2 * ldf + j); p2 = FMA(f, u, p2); q2 = FMA(f, v, q2);              \
        f = BCAST(F + 3 * ldf + j); p3 = FMA(f, u, p3); q3 = FMA(f, v, q3);              \
    }                                                                                    \
    STORE(a0, p0); STORE(a0 + W, q0); STORE(a1, p1); STORE(a1 + W, q1);                  \
    STORE(a2, p2); STORE(a2 + W, q2); STORE(a3, p3); STORE(a3 + W, q3);                  \
}

FASTNMF_DOTS3X2(fastnmf_dots3x2_d, double, __m256d, 4, _mm256_loadu_pd, _mm256_storeu_pd,
                _mm256_fmadd_pd, _mm256_setzero_pd)
FASTNMF_DOTS3X2(fastnmf_dots3x2_s, float, __m256, 8, _mm256_loadu_ps, _mm256_storeu_ps,
                _mm256_fmadd_ps, _mm256_setzero_ps)
FASTNMF_STRIP4X1(fastnmf_strip4x1_d, double, __m256d, 4, _mm256_loadu_pd, _mm256_storeu_pd,
                 _mm256_fmadd_pd, _mm256_setzero_pd, _mm256_broadcast_sd)
FASTNMF_STRIP4X1(fastnmf_strip4x1_s, float, __m256, 8, _mm256_loadu_ps, _mm256_storeu_ps,
                 _mm256_fmadd_ps, _mm256_setzero_ps, _mm256_broadcast_ss)

#else
#define FASTNMF_AVX2_KERNELS 0
#include <stdlib.h>
/* Never called without FASTNMF_AVX2_KERNELS (_narrow.pxi checks it first). */
static void fastnmf_dots3x2_d(const double* x0, const double* x1, const double* x2,
                              const double* h0, const double* h1, Py_ssize_t end,
                              double* s00, double* s01, double* s10, double* s11,
                              double* s20, double* s21) { abort(); }
static void fastnmf_dots3x2_s(const float* x0, const float* x1, const float* x2,
                              const float* h0, const float* h1, Py_ssize_t end,
                              float* s00, float* s01, float* s10, float* s11,
                              float* s20, float* s21) { abort(); }
static void fastnmf_strip4x1_d(const double* X, Py_ssize_t w, Py_ssize_t ld,
                               const double* F, Py_ssize_t ldf, double* a0, double* a1,
                               double* a2, double* a3) { abort(); }
static void fastnmf_strip4x1_s(const float* X, Py_ssize_t w, Py_ssize_t ld,
                               const float* F, Py_ssize_t ldf, float* a0, float* a1,
                               float* a2, float* a3) { abort(); }
#endif

#endif

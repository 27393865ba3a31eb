// Convolution as im2col + matrix products (the products run in cuBLAS, from the host): `im2col`
// lays the windows of a run of images out as columns, `col2im` adds columns back into image
// gradients (a gather over the taps that reach each input pixel, so no atomics).
//
// The column buffer of `images` images is `[images, channels, kernel_h, kernel_w, out_pixels]`,
// which is `[images, groups, patch, out_pixels]` with `patch = channels/groups * kh * kw`.
#include "common.cuh"

// `ConvGeometry`, as `KConv` on the host.
struct Conv {
    i64 batch, in_channels, out_channels, groups;
    i64 ih, iw, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow;
};

#define CONV_KERNELS(T, N)                                                                               \
    extern "C" __global__ void im2col_##N(const T* x, Conv g, i64 n0, i64 images, T* col) {              \
        i64 P = g.oh * g.ow;                                                                             \
        i64 total = images * g.in_channels * g.kh * g.kw * P;                                            \
        FOR_EACH(i, total) {                                                                             \
            i64 p = i % P, t = i / P;                                                                    \
            i64 kj = t % g.kw; t /= g.kw;                                                                \
            i64 ki = t % g.kh; t /= g.kh;                                                                \
            i64 c = t % g.in_channels, n = t / g.in_channels + n0;                                       \
            i64 y = (p / g.ow) * g.sh - g.ph + ki * g.dh;                                                \
            i64 xx = (p % g.ow) * g.sw - g.pw + kj * g.dw;                                               \
            bool inside = y >= 0 && y < g.ih && xx >= 0 && xx < g.iw;                                    \
            col[i] = inside ? x[((n * g.in_channels + c) * g.ih + y) * g.iw + xx] : Acc<T>::store(0);    \
        }                                                                                                \
    }                                                                                                    \
    /* gx[n0 + n] += the columns' contributions to each input pixel. */                                  \
    extern "C" __global__ void col2im_##N(const T* col, Conv g, i64 n0, i64 images, T* gx) {             \
        typedef typename Acc<T>::t A;                                                                    \
        i64 P = g.oh * g.ow;                                                                             \
        i64 total = images * g.in_channels * g.ih * g.iw;                                                \
        FOR_EACH(i, total) {                                                                             \
            i64 xx = i % g.iw, t = i / g.iw;                                                             \
            i64 y = t % g.ih; t /= g.ih;                                                                 \
            i64 c = t % g.in_channels, n = t / g.in_channels;                                            \
            A s = (A)0;                                                                                  \
            for (i64 ki = 0; ki < g.kh; ++ki) {                                                          \
                i64 hy = y + g.ph - ki * g.dh;                                                           \
                if (hy < 0 || hy % g.sh != 0 || hy / g.sh >= g.oh) continue;                             \
                for (i64 kj = 0; kj < g.kw; ++kj) {                                                      \
                    i64 hx = xx + g.pw - kj * g.dw;                                                      \
                    if (hx < 0 || hx % g.sw != 0 || hx / g.sw >= g.ow) continue;                         \
                    i64 p = (hy / g.sh) * g.ow + hx / g.sw;                                              \
                    s += Acc<T>::load(col[(((n * g.in_channels + c) * g.kh + ki) * g.kw + kj) * P + p]); \
                }                                                                                        \
            }                                                                                            \
            i64 o = (((n0 + n) * g.in_channels + c) * g.ih + y) * g.iw + xx;                             \
            gx[o] = Acc<T>::store(Acc<T>::load(gx[o]) + s);                                              \
        }                                                                                                \
    }
FOR_EACH_FLOAT(CONV_KERNELS)

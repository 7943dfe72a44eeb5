// The GRU's per-step elementwise work as two fused kernels for XLA's CPU backend (XLA FFI).
//
// XLA compiles a GRU step's elementwise work into about ten small kernels (each gate, each saved
// value's in-place write), most on one thread; here each step is one pass over its rows, shared by the
// intra-op thread pool. rnnbench/models/rnn/native.py compiles this file on first use and cells.py calls it
// between the step's recurrent matmuls, which stay XLA's. Float32 only; layouts are row-major:
//
//   forward step t:   h (B,H), gh = h W_h (B,3H), xw (T,B,3H), b_x (3H), b_h (3H), mask (T,B,1), t,
//                     saved h_prev, z, r, n, ghn (T,B,H)  ->  h' (in h's buffer), the saved values
//                     with their row t written (in their buffers)
//   backward step t:  c, mm (B,H), dhs (T,B,H), the saved values, mask, t, dxg (T,B,3H)  ->  c' (in
//                     c's buffer), dgh (B,3H), dxg with its row t written (in its buffer)
//
// where dh = c + mm + dhs[t] is the gradient of the step's output state, mm = dgh_{t+1} W_h^T is the
// recurrent matmul that XLA runs between two calls, and c' = (1 - m) dh + m dh z is the part of the
// next dh that does not go through W_h. The formulas are those of cells.py's _gru_forward and
// _gru_backward_scan; the buffers written in place are aliased to the inputs by native.py.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// tanh as XLA's CPU backend computes it (Eigen's rational approximation on [-7.9, 7.9]); written
// without branches so that the compiler vectorises the loops that call it.
inline float tanh_approx(float x) {
  const float bound = 7.90531110763549805f;
  x = std::min(std::max(x, -bound), bound);
  const float x2 = x * x;
  float p = -2.76076847742355e-16f;
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 + -8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  float q = 1.19825839466702e-06f;
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  return x * p / q;
}

// Gate activations (cells.py's GATES): sigmoid(slope x) through tanh, or Passage's hard sigmoid.
template <bool kHard>
inline float gate(float x, float half_slope) {
  if constexpr (kHard) return std::min(std::max(x + 0.5f, 0.0f), 1.0f);
  return 0.5f * tanh_approx(half_slope * x) + 0.5f;
}

// The derivative through the activation's output s.
template <bool kHard>
inline float gate_grad(float s, float slope) {
  if constexpr (kHard) return (s > 0.0f && s < 1.0f) ? 1.0f : 0.0f;
  return slope * s * (1.0f - s);
}

// Runs fn(row_begin, row_end) over blocks of rows on the calling thread and on helpers from XLA's
// intra-op pool. The caller claims blocks too, so the call never waits on a helper that has not
// started (one that starts late finds nothing left); it waits only for blocks a helper is running.
template <typename Fn>
void for_rows(ffi::ThreadPool& pool, int64_t rows, int64_t row_cost, const Fn& fn) {
  constexpr int64_t kMinWork = 8192;  // elements per block: below this a helper costs more than it saves
  const int64_t block = std::max<int64_t>(1, (kMinWork + row_cost - 1) / row_cost);
  const int64_t blocks = (rows + block - 1) / block;
  const int64_t helpers = std::min<int64_t>(pool.num_threads(), blocks) - 1;
  if (helpers <= 0) {
    fn(0, rows);
    return;
  }
  struct Shared {
    std::atomic<int64_t> next{0};
    std::atomic<int64_t> done{0};
  };
  auto shared = std::make_shared<Shared>();
  auto work = [shared, blocks, block, rows, fn]() {
    for (int64_t k; (k = shared->next.fetch_add(1, std::memory_order_relaxed)) < blocks;) {
      fn(k * block, std::min(rows, (k + 1) * block));
      shared->done.fetch_add(1, std::memory_order_release);
    }
  };
  for (int64_t i = 0; i < helpers; ++i) pool.Schedule(decltype(work)(work));
  work();
  while (shared->done.load(std::memory_order_acquire) < blocks) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
}

using F32 = ffi::Buffer<ffi::F32>;
using F32Out = ffi::ResultBuffer<ffi::F32>;

template <typename Buffer>
int64_t count(const Buffer& buffer) {
  return static_cast<int64_t>(buffer.element_count());
}

ffi::Error check(bool ok, const char* what) {
  return ok ? ffi::Error::Success() : ffi::Error::InvalidArgument(what);
}

// One row (text) of a forward step. Its pointers are parameters marked __restrict, which is what lets
// GCC and Clang vectorise the loop: they do not overlap.
template <bool kHard>
void forward_row(int64_t H, float half_slope, float m, const float* __restrict x, const float* __restrict g,
                 const float* __restrict bx, const float* __restrict bh, float* __restrict h,
                 float* __restrict h_prev, float* __restrict z, float* __restrict r, float* __restrict n,
                 float* __restrict ghn) {
  for (int64_t j = 0; j < H; ++j) {
    const float zj = gate<kHard>(x[j] + bx[j] + g[j] + bh[j], half_slope);
    const float rj = gate<kHard>(x[H + j] + bx[H + j] + g[H + j] + bh[H + j], half_slope);
    const float gn = g[2 * H + j] + bh[2 * H + j];
    const float nj = tanh_approx(x[2 * H + j] + bx[2 * H + j] + rj * gn);
    const float hj = h[j];
    h[j] = hj + m * (zj * hj + (1.0f - zj) * nj - hj);
    h_prev[j] = hj;
    z[j] = zj;
    r[j] = rj;
    n[j] = nj;
    ghn[j] = gn;
  }
}

struct Forward {
  int64_t H;
  float half_slope;
  const float *gh, *xw, *bx, *bh, *mask;
  float *h, *h_prev, *z, *r, *n, *ghn;

  template <bool kHard>
  void rows(int64_t b0, int64_t b1) const {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t o = b * H;
      forward_row<kHard>(H, half_slope, mask[b], xw + 3 * o, gh + 3 * o, bx, bh, h + o, h_prev + o, z + o, r + o,
                         n + o, ghn + o);
    }
  }
};

ffi::Error GruForwardStep(ffi::ThreadPool pool, F32 h, F32 gh, F32 xw, F32 bx, F32 bh, F32 mask,
                          ffi::Buffer<ffi::S32> step, F32, F32, F32, F32, F32, F32Out h_out, F32Out h_prev,
                          F32Out z, F32Out r, F32Out n, F32Out ghn, float slope, int32_t hard) {
  const auto dims = xw.dimensions();
  if (auto e = check(dims.size() == 3 && dims[2] % 3 == 0, "gru forward: xw must be (T, B, 3H)"); e.failure()) {
    return e;
  }
  const int64_t T = dims[0], B = dims[1], H = dims[2] / 3;
  const int32_t t = step.typed_data()[0];
  if (auto e = check(count(h) == B * H && count(gh) == B * 3 * H && count(bx) == 3 * H && count(bh) == 3 * H &&
                         count(mask) == T * B && count(*h_prev) == T * B * H && count(*z) == T * B * H &&
                         count(*r) == T * B * H && count(*n) == T * B * H && count(*ghn) == T * B * H,
                     "gru forward: shapes disagree");
      e.failure()) {
    return e;
  }
  if (auto e = check(t >= 0 && t < T, "gru forward: step out of range"); e.failure()) return e;
  const int64_t at = int64_t{t} * B * H;
  // h_out is h's buffer (aliased): each element is read before its new value is written
  const Forward f{H, 0.5f * slope, gh.typed_data(), xw.typed_data() + at * 3, bx.typed_data(), bh.typed_data(),
                  mask.typed_data() + int64_t{t} * B, h_out->typed_data(), h_prev->typed_data() + at,
                  z->typed_data() + at, r->typed_data() + at, n->typed_data() + at, ghn->typed_data() + at};
  if (hard) {
    for_rows(pool, B, H, [&f](int64_t b0, int64_t b1) { f.rows<true>(b0, b1); });
  } else {
    for_rows(pool, B, H, [&f](int64_t b0, int64_t b1) { f.rows<false>(b0, b1); });
  }
  return ffi::Error::Success();
}

// One row (text) of a backward step; __restrict parameters as in forward_row.
template <bool kHard>
void backward_row(int64_t H, float slope, float m, float* __restrict c, const float* __restrict mm,
                  const float* __restrict dh_out, const float* __restrict h_prev, const float* __restrict z,
                  const float* __restrict r, const float* __restrict n, const float* __restrict ghn,
                  float* __restrict dgh, float* __restrict dxg) {
  for (int64_t j = 0; j < H; ++j) {
    const float dh = c[j] + mm[j] + dh_out[j];
    const float dh_new = m * dh;
    const float zj = z[j], rj = r[j], nj = n[j];
    const float dn_pre = dh_new * (1.0f - zj) * (1.0f - nj * nj);
    const float dz_pre = dh_new * (h_prev[j] - nj) * gate_grad<kHard>(zj, slope);
    const float dr_pre = dn_pre * ghn[j] * gate_grad<kHard>(rj, slope);
    dxg[j] = dz_pre;
    dxg[H + j] = dr_pre;
    dxg[2 * H + j] = dn_pre;
    dgh[j] = dz_pre;
    dgh[H + j] = dr_pre;
    dgh[2 * H + j] = dn_pre * rj;
    c[j] = (1.0f - m) * dh + dh_new * zj;
  }
}

struct Backward {
  int64_t H;
  float slope;
  const float *mm, *dh_out, *h_prev, *z, *r, *n, *ghn, *mask;
  float *c, *dgh, *dxg;

  template <bool kHard>
  void rows(int64_t b0, int64_t b1) const {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t o = b * H;
      backward_row<kHard>(H, slope, mask[b], c + o, mm + o, dh_out + o, h_prev + o, z + o, r + o, n + o, ghn + o,
                          dgh + 3 * o, dxg + 3 * o);
    }
  }
};

ffi::Error GruBackwardStep(ffi::ThreadPool pool, F32 c, F32 mm, F32 dhs, F32 h_prev, F32 z, F32 r, F32 n, F32 ghn,
                           F32 mask, ffi::Buffer<ffi::S32> step, F32, F32Out c_out, F32Out dgh, F32Out dxg,
                           float slope, int32_t hard) {
  const auto dims = dhs.dimensions();
  if (auto e = check(dims.size() == 3, "gru backward: dhs must be (T, B, H)"); e.failure()) return e;
  const int64_t T = dims[0], B = dims[1], H = dims[2];
  const int32_t t = step.typed_data()[0];
  if (auto e = check(count(c) == B * H && count(mm) == B * H && count(mask) == T * B && count(h_prev) == T * B * H &&
                         count(z) == T * B * H && count(r) == T * B * H && count(n) == T * B * H &&
                         count(ghn) == T * B * H && count(*dxg) == T * B * 3 * H && count(*dgh) == B * 3 * H,
                     "gru backward: shapes disagree");
      e.failure()) {
    return e;
  }
  if (auto e = check(t >= 0 && t < T, "gru backward: step out of range"); e.failure()) return e;
  const int64_t at = int64_t{t} * B * H;
  // c_out is c's buffer (aliased), as h is in the forward step
  const Backward k{H, slope, mm.typed_data(), dhs.typed_data() + at, h_prev.typed_data() + at,
                   z.typed_data() + at, r.typed_data() + at, n.typed_data() + at, ghn.typed_data() + at,
                   mask.typed_data() + int64_t{t} * B, c_out->typed_data(), dgh->typed_data(),
                   dxg->typed_data() + at * 3};
  if (hard) {
    for_rows(pool, B, H, [&k](int64_t b0, int64_t b1) { k.rows<true>(b0, b1); });
  } else {
    for_rows(pool, B, H, [&k](int64_t b0, int64_t b1) { k.rows<false>(b0, b1); });
  }
  return ffi::Error::Success();
}

// Leaves its outputs as allocated: buffers that the steps above fill row by row, with no fill first.
ffi::Error Uninitialized(ffi::RemainingRets) { return ffi::Error::Success(); }

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnbenchGruForwardStep, GruForwardStep,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<F32>()  // h
                                  .Arg<F32>()  // gh
                                  .Arg<F32>()  // xw
                                  .Arg<F32>()  // b_x
                                  .Arg<F32>()  // b_h
                                  .Arg<F32>()  // mask
                                  .Arg<ffi::Buffer<ffi::S32>>()  // t
                                  .Arg<F32>()  // saved values, aliased to the results below
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Ret<F32>()  // h'
                                  .Ret<F32>()  // h_prev, z, r, n, ghn
                                  .Ret<F32>()
                                  .Ret<F32>()
                                  .Ret<F32>()
                                  .Ret<F32>()
                                  .Attr<float>("slope")
                                  .Attr<int32_t>("hard"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnbenchGruBackwardStep, GruBackwardStep,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<F32>()  // c
                                  .Arg<F32>()  // mm
                                  .Arg<F32>()  // dhs
                                  .Arg<F32>()  // h_prev
                                  .Arg<F32>()  // z
                                  .Arg<F32>()  // r
                                  .Arg<F32>()  // n
                                  .Arg<F32>()  // ghn
                                  .Arg<F32>()  // mask
                                  .Arg<ffi::Buffer<ffi::S32>>()  // t
                                  .Arg<F32>()  // dxg, aliased to the last result
                                  .Ret<F32>()  // c'
                                  .Ret<F32>()  // dgh
                                  .Ret<F32>()  // dxg
                                  .Attr<float>("slope")
                                  .Attr<int32_t>("hard"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnbenchUninitialized, Uninitialized, ffi::Ffi::Bind().RemainingRets());

// ppipe's own depthwise-convolution weight gradient on plain NCHW tensors (depthwise.cc).
#pragma once

#include <cstdint>

namespace ppipe {

struct DepthwiseGeometry {
  int64_t n, c, h, w, oh, ow, kh, kw, sh, sw, pad_top, pad_left;
};

// dw[c][i][j] = sum over n, oh, ow of dy[n][c][oh][ow] * x[n][c][oh*sh + i - pad_top][ow*sw + j - pad_left]
// (zero outside the image): the weight gradient of a depthwise convolution with one filter per channel and
// no dilation. x: N x C x H x W, dy: N x C x OH x OW, dw: C x 1 x KH x KW, all contiguous float32.
void depthwise_weight_gradient(const float* x, const float* dy, float* dw, const DepthwiseGeometry& g);

}  // namespace ppipe

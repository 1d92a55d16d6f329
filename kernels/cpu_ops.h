// The CPU operators of fedsilo, one header per op (kernels/cpu/<op>.h, ggml style). Each op is
// a template instantiated for float (what models run) and double (what gradient checks use).
#pragma once

#include "kernels/cpu/bias.h"
#include "kernels/cpu/conv2d.h"
#include "kernels/cpu/dense.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/maxpool2d.h"
#include "kernels/cpu/reduce.h"
#include "kernels/cpu/relu.h"
#include "kernels/cpu/sgd.h"
#include "kernels/cpu/softmax_xent.h"

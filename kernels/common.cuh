// common.cuh: helpers shared by every xlt CUDA kernel (shape names follow the CPU backend:
// B batch, T time, C channels, NH heads, HS head size). Kernels land one concern per file.
#pragma once
#define XLT_CEIL_DIV(a, b) (((a) + (b) - 1) / (b))

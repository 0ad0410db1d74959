// The baseline: llm.c's matmul_forward as a plain triple loop.
#include <stddef.h>

void linear(float* out, const float* inp, const float* weight, const float* bias, int BT, int C, int OC) {
    for (int bt = 0; bt < BT; bt++) {
        for (int o = 0; o < OC; o++) {
            float val = (bias != NULL) ? bias[o] : 0.0f;
            for (int i = 0; i < C; i++) {
                val += inp[bt * C + i] * weight[o * C + i];
            }
            out[bt * OC + o] = val;
        }
    }
}

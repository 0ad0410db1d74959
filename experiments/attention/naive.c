// The baseline: causal grouped-query attention, two passes over the scores, no scratch memory.
#include <math.h>

void attention(float* out, const float* q, const float* k, const float* v,
               int B, int T, int NH, int NKV, int HS) {
    float scale = 1.0f / sqrtf((float)HS);
    int group = NH / NKV;
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            for (int h = 0; h < NH; h++) {
                const float* qt = q + ((b * T + t) * NH + h) * HS;
                int kvh = h / group;
                // pass 1: the largest score, so exp() cannot overflow
                float maxval = -INFINITY;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float* kt = k + ((b * T + t2) * NKV + kvh) * HS;
                    float s = 0.0f;
                    for (int i = 0; i < HS; i++) s += qt[i] * kt[i];
                    s *= scale;
                    if (s > maxval) maxval = s;
                }
                // pass 2: softmax weights times values
                float* o = out + ((b * T + t) * NH + h) * HS;
                for (int i = 0; i < HS; i++) o[i] = 0.0f;
                float sum = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float* kt = k + ((b * T + t2) * NKV + kvh) * HS;
                    const float* vt = v + ((b * T + t2) * NKV + kvh) * HS;
                    float s = 0.0f;
                    for (int i = 0; i < HS; i++) s += qt[i] * kt[i];
                    float w = expf(s * scale - maxval);
                    sum += w;
                    for (int i = 0; i < HS; i++) o[i] += w * vt[i];
                }
                for (int i = 0; i < HS; i++) o[i] /= sum;
            }
        }
    }
}

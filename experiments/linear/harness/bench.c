// Validates and times linear() on looplab's harness library (looplab.h): built once as the trusted
// supervisor and once, with -DLOOPLAB_WORKER, as the confined worker that holds the candidate.
//
// Every call gets fresh random inputs; call 1 is checked element by element against a
// double-precision reference, every timed call on a random full row, a random full column and
// random elements chosen after the call. The library checks canaries, inputs, NaN/Inf and timing.
#include "looplab.h"

#ifdef LOOPLAB_WORKER

void linear(float* out, const float* inp, const float* weight, const float* bias, int BT, int C, int OC);

void ll_target(const ll_args* a) { linear(a->p[0], a->p[1], a->p[2], a->p[3], a->n[0], a->n[1], a->n[2]); }

#else

#include <stdio.h>
#include <string.h>

typedef struct {
    const char* name;
    int BT, C, OC;
    int has_bias;
    float scale;   // inputs and weights are uniform in [-scale, scale)
    int misalign;  // buffers one float off the 64-byte boundary
    int batch;     // calls per timed sample: small cases amortise the supervisor's handshake
} lin_case;

static const lin_case CASES[] = {
    // search: GPT-2 small (C=768) layers on 64 tokens, and single-token decode
    {"gpt2_attn_proj_bt64", 64, 768, 768, 1, 1.0f, 0, 1},
    {"gpt2_attn_qkv_bt64", 64, 768, 2304, 1, 1.0f, 0, 1},
    {"gpt2_mlp_fc_bt64", 64, 768, 3072, 1, 1.0f, 0, 1},
    {"gpt2_mlp_proj_bt64", 64, 3072, 768, 1, 1.0f, 0, 1},
    {"gpt2_attn_proj_bt1", 1, 768, 768, 1, 1.0f, 0, 8},
    // holdout: odd shapes, no bias, unaligned buffers, large magnitudes
    {"odd_7x333x129_nobias", 7, 333, 129, 0, 1.0f, 1, 16},
    {"odd_13x771x67_bigmag", 13, 771, 67, 1, 1000.0f, 1, 16},
    {"odd_1x5x3", 1, 5, 3, 1, 1.0f, 1, 4096},
    {"gpt2_attn_proj_bt64_nobias", 64, 768, 768, 0, 1.0f, 0, 1},
    {"odd_64x768x2304_unaligned", 64, 768, 2304, 1, 1.0f, 1, 1},
};

enum { OUT, INP, W, BIAS };
#define TOL 1e-5         // |out - ref| <= TOL * (sum_c |inp*w| + |bias|)
#define SPOT_CHECKS 32

static int setup(ll_case* c, const char* name) {
    const lin_case* k = NULL;
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++)
        if (!strcmp(CASES[i].name, name)) k = &CASES[i];
    if (!k) return 0;
    ll_set_user(c, k);
    ll_buffer(c, "out", LL_F32, (size_t)k->BT * k->OC, LL_OUT, k->misalign);
    ll_buffer(c, "inp", LL_F32, (size_t)k->BT * k->C, LL_IN, k->misalign);
    ll_buffer(c, "weight", LL_F32, (size_t)k->OC * k->C, LL_IN, k->misalign);
    if (k->has_bias) ll_buffer(c, "bias", LL_F32, (size_t)k->OC, LL_IN, k->misalign);
    else ll_null(c, "bias");
    ll_int(c, k->BT);
    ll_int(c, k->C);
    ll_int(c, k->OC);
    ll_batch(c, k->batch);
    return 1;
}

static void inputs(ll_case* c, int set, int call) {
    (void)call;
    const lin_case* k = ll_user(c);
    ll_fill(c, ll_in(c, set, INP), ll_count(c, INP), -k->scale, k->scale);
    ll_fill(c, ll_in(c, set, W), ll_count(c, W), -k->scale, k->scale);
    if (k->has_bias) ll_fill(c, ll_in(c, set, BIAS), ll_count(c, BIAS), -k->scale, k->scale);
}

// 1 if out[bt][o] is right (double-precision reference, tolerance scaled by sum |inp*w|); else the failure
static int check_elem(ll_case* c, int set, int bt, int o, int call) {
    const lin_case* k = ll_user(c);
    const float* x = (const float*)ll_in(c, set, INP) + (size_t)bt * k->C;
    const float* w = (const float*)ll_in(c, set, W) + (size_t)o * k->C;
    double acc[4] = {0, 0, 0, 0}, mag[4] = {0, 0, 0, 0};
    int i = 0;
    for (; i + 4 <= k->C; i += 4)
        for (int j = 0; j < 4; j++) {
            double t = (double)x[i + j] * w[i + j];
            acc[j] += t;
            mag[j] += fabs(t);
        }
    for (; i < k->C; i++) {
        double t = (double)x[i] * w[i];
        acc[0] += t;
        mag[0] += fabs(t);
    }
    double bias = k->has_bias ? ((const float*)ll_in(c, set, BIAS))[o] : 0.0;
    double want = acc[0] + acc[1] + acc[2] + acc[3] + bias;
    double tol = TOL * (mag[0] + mag[1] + mag[2] + mag[3] + fabs(bias)) + 1e-30;
    double got = ((const float*)ll_out(c, set, OUT))[(size_t)bt * k->OC + o];
    if (ll_close(got, want, tol)) return 1;
    return ll_fail(c, "out[%d][%d] = %.9g, expected %.9g (|diff| %.3g > tol %.3g) on call %d",
                   bt, o, got, want, fabs(got - want), tol, call);
}

static int check(ll_case* c, int set, int call) {
    const lin_case* k = ll_user(c);
    if (call == 1) {  // the first call: every element
        for (int bt = 0; bt < k->BT; bt++)
            for (int o = 0; o < k->OC; o++)
                if (!check_elem(c, set, bt, o, call)) return 0;
        return 1;
    }
    // then a random full row and column and random elements: a cached or partial result fails here
    int row = (int)ll_pick(c, k->BT), col = (int)ll_pick(c, k->OC);
    for (int o = 0; o < k->OC; o++)
        if (!check_elem(c, set, row, o, call)) return 0;
    for (int bt = 0; bt < k->BT; bt++)
        if (!check_elem(c, set, bt, col, call)) return 0;
    for (int j = 0; j < SPOT_CHECKS; j++)
        if (!check_elem(c, set, (int)ll_pick(c, k->BT), (int)ll_pick(c, k->OC), call)) return 0;
    return 1;
}

static void metrics(ll_case* c, double median_us) {
    const lin_case* k = ll_user(c);
    ll_metric(c, "\"gflops\": %.3f", 2.0 * k->BT * k->C * k->OC / median_us / 1e3);
    ll_metric(c, "\"shape\": \"%dx%dx%d\"", k->BT, k->C, k->OC);
}

// warm-up call 1 untimed; then 3..10 timed samples, as many as fit 0.25 s
const ll_harness LL_HARNESS = {.setup = setup, .inputs = inputs, .check = check, .metrics = metrics,
                               .warmup = 1, .budget_us = 250000.0, .min_reps = 3, .max_reps = 10};

#endif

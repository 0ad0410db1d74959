// Validates and times linear(); prints one JSON object per case (looplab's evaluator protocol).
//
// Every call gets fresh random inputs in the same buffers; the first call of a case is checked
// element by element against a double-precision reference, every timed call on a random full
// row, a random full column and random elements. Canaries, input checksums, NaN/Inf and the
// thread count are checked after every call.
#include "looplab_harness.h"

void linear(float* out, const float* inp, const float* weight, const float* bias, int BT, int C, int OC);

typedef struct {
    const char* name;
    int BT, C, OC;
    int has_bias;
    float scale;   // inputs and weights are uniform in [-scale, scale)
    int misalign;  // buffers one float off the 64-byte boundary
} lin_case;

static const lin_case CASES[] = {
    // search: GPT-2 small (C=768) layers on 64 tokens, and single-token decode
    {"gpt2_attn_proj_bt64", 64, 768, 768, 1, 1.0f, 0},
    {"gpt2_attn_qkv_bt64", 64, 768, 2304, 1, 1.0f, 0},
    {"gpt2_mlp_fc_bt64", 64, 768, 3072, 1, 1.0f, 0},
    {"gpt2_mlp_proj_bt64", 64, 3072, 768, 1, 1.0f, 0},
    {"gpt2_attn_proj_bt1", 1, 768, 768, 1, 1.0f, 0},
    // holdout: odd shapes, no bias, unaligned buffers, large magnitudes
    {"odd_7x333x129_nobias", 7, 333, 129, 0, 1.0f, 1},
    {"odd_13x771x67_bigmag", 13, 771, 67, 1, 1000.0f, 1},
    {"odd_1x5x3", 1, 5, 3, 1, 1.0f, 1},
    {"gpt2_attn_proj_bt64_nobias", 64, 768, 768, 0, 1.0f, 0},
    {"odd_64x768x2304_unaligned", 64, 768, 2304, 1, 1.0f, 1},
};

#define TOL 1e-5            // |out - ref| <= TOL * (sum_c |inp*w| + |bias|)
#define BUDGET_US 250000.0  // timed calls per case: as many as fit, 3..10
#define SPOT_CHECKS 32

typedef struct {
    const lin_case* k;
    ll_buf out, inp, w, b;
    uint64_t h_inp, h_w, h_b;
} lin_state;

// double-precision reference of one output element, and the magnitude its tolerance scales with
static double ref_elem(const lin_state* s, int bt, int o, double* mag) {
    const float* x = s->inp.p + (size_t)bt * s->k->C;
    const float* w = s->w.p + (size_t)o * s->k->C;
    double acc[4] = {0, 0, 0, 0}, abs_[4] = {0, 0, 0, 0};
    int C = s->k->C, i = 0;
    for (; i + 4 <= C; i += 4)
        for (int j = 0; j < 4; j++) {
            double t = (double)x[i + j] * w[i + j];
            acc[j] += t;
            abs_[j] += fabs(t);
        }
    for (; i < C; i++) {
        double t = (double)x[i] * w[i];
        acc[0] += t;
        abs_[0] += fabs(t);
    }
    double bias = s->k->has_bias ? s->b.p[o] : 0.0;
    *mag = abs_[0] + abs_[1] + abs_[2] + abs_[3] + fabs(bias);
    return acc[0] + acc[1] + acc[2] + acc[3] + bias;
}

// 1 if out[bt][o] is right; otherwise reports the failure and returns 0
static int check_elem(const lin_state* s, int bt, int o, int call) {
    double mag, want = ref_elem(s, bt, o, &mag);
    double got = s->out.p[(size_t)bt * s->k->OC + o];
    double tol = TOL * mag + 1e-30;
    if (ll_close(got, want, tol)) return 1;
    ll_fail(s->k->name, "out[%d][%d] = %.9g, expected %.9g (|diff| %.3g > tol %.3g) on call %d",
            bt, o, got, want, fabs(got - want), tol, call);
    return 0;
}

static void refill(lin_state* s, ll_rng* r) {
    const lin_case* k = s->k;
    ll_fill(r, s->inp.p, s->inp.n, -k->scale, k->scale);
    ll_fill(r, s->w.p, s->w.n, -k->scale, k->scale);
    if (k->has_bias) ll_fill(r, s->b.p, s->b.n, -k->scale, k->scale);
    ll_buf_poison(&s->out);
    s->h_inp = ll_hash(s->inp.p, s->inp.n * sizeof(float));
    s->h_w = ll_hash(s->w.p, s->w.n * sizeof(float));
    s->h_b = k->has_bias ? ll_hash(s->b.p, s->b.n * sizeof(float)) : 0;
}

// One call: fresh inputs, timed, then everything that must hold after any call. Returns us or -1.
static double call_checked(lin_state* s, ll_rng* r, int call) {
    const lin_case* k = s->k;
    refill(s, r);
    const float* bias = k->has_bias ? s->b.p : NULL;
    double t0 = ll_now_us();
    linear(s->out.p, s->inp.p, s->w.p, bias, k->BT, k->C, k->OC);
    double t1 = ll_now_us();
    const char* name = k->name;
    int c = ll_buf_canaries(&s->out);
    if (c) { ll_fail(name, "wrote %s the out buffer on call %d", c < 0 ? "before" : "past the end of", call); return -1; }
    if (ll_buf_canaries(&s->inp) || ll_buf_canaries(&s->w) || (k->has_bias && ll_buf_canaries(&s->b))) {
        ll_fail(name, "wrote outside an input buffer on call %d", call);
        return -1;
    }
    if (ll_hash(s->inp.p, s->inp.n * sizeof(float)) != s->h_inp) { ll_fail(name, "modified inp (it is const) on call %d", call); return -1; }
    if (ll_hash(s->w.p, s->w.n * sizeof(float)) != s->h_w) { ll_fail(name, "modified weight (it is const) on call %d", call); return -1; }
    if (k->has_bias && ll_hash(s->b.p, s->b.n * sizeof(float)) != s->h_b) { ll_fail(name, "modified bias (it is const) on call %d", call); return -1; }
    int threads = ll_thread_count();
    if (threads > 1) { ll_fail(name, "%d threads alive after call %d (single thread only)", threads, call); return -1; }
    long bad = ll_first_nonfinite(s->out.p, s->out.n);
    if (bad >= 0) {
        ll_fail(name, "out[%ld][%ld] is %g on call %d", bad / k->OC, bad % k->OC, s->out.p[bad], call);
        return -1;
    }
    return t1 - t0;
}

static void run_case(const char* name, ll_rng* r) {
    const lin_case* k = NULL;
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++)
        if (!strcmp(CASES[i].name, name)) k = &CASES[i];
    if (!k) { ll_fail(name, "unknown case"); return; }

    lin_state s = {.k = k};
    s.out = ll_buf_new((size_t)k->BT * k->OC, k->misalign, r);
    s.inp = ll_buf_new((size_t)k->BT * k->C, k->misalign, r);
    s.w = ll_buf_new((size_t)k->OC * k->C, k->misalign, r);
    s.b = ll_buf_new(k->has_bias ? (size_t)k->OC : 1, k->misalign, r);

    // call 1: warm-up, checked on every element
    double first = call_checked(&s, r, 1);
    int ok = first >= 0;
    for (int bt = 0; ok && bt < k->BT; bt++)
        for (int o = 0; ok && o < k->OC; o++) ok = check_elem(&s, bt, o, 1);

    double samples[10];
    int reps = ll_reps(first, BUDGET_US, 3, 10);
    for (int i = 0; ok && i < reps; i++) {
        int call = i + 2;
        samples[i] = call_checked(&s, r, call);
        ok = samples[i] >= 0;
        // a random full row and column and random elements: a cached or partial result fails here
        int row = ll_randint(r, k->BT), col = ll_randint(r, k->OC);
        for (int o = 0; ok && o < k->OC; o++) ok = check_elem(&s, row, o, call);
        for (int bt = 0; ok && bt < k->BT; bt++) ok = check_elem(&s, bt, col, call);
        for (int j = 0; ok && j < SPOT_CHECKS; j++) ok = check_elem(&s, ll_randint(r, k->BT), ll_randint(r, k->OC), call);
    }
    if (ok) {
        double median = ll_median(samples, reps);
        char extra[128];
        snprintf(extra, sizeof extra, "\"gflops\": %.3f, \"shape\": \"%dx%dx%d\"",
                 2.0 * k->BT * k->C * k->OC / median / 1e3, k->BT, k->C, k->OC);
        ll_ok(name, samples, reps, extra);
    }
    ll_buf_free(&s.out); ll_buf_free(&s.inp); ll_buf_free(&s.w); ll_buf_free(&s.b);
}

int main(int argc, char** argv) { return ll_main(argc, argv, run_case); }

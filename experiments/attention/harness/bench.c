// Validates and times attention() on looplab's harness library (looplab.h): built once as the
// trusted supervisor and once, with -DLOOPLAB_WORKER, as the confined worker holding the candidate.
//
// Per case: call 1 checks every output row against a double-precision reference; call 2 does the
// same with scores in the hundreds (softmax must subtract the max); call 3 perturbs every position
// after a random cut with huge values and requires the rows up to the cut to be unchanged
// (causality). Timed calls get fresh inputs and are checked on random rows chosen after the call.
#include "looplab.h"

#ifdef LOOPLAB_WORKER

void attention(float* out, const float* q, const float* k, const float* v, int B, int T, int NH, int NKV, int HS);

void ll_target(const ll_args* a) { attention(a->p[0], a->p[1], a->p[2], a->p[3], a->n[0], a->n[1], a->n[2], a->n[3], a->n[4]); }

#else

#include <stdio.h>
#include <string.h>

typedef struct {
    const char* name;
    int B, T, NH, NKV, HS;
    int misalign;  // buffers one float off the 64-byte boundary
    int batch;     // calls per timed sample: small cases amortise the supervisor's handshake
} att_case;

static const att_case CASES[] = {
    // search: GPT-2 small heads (12 x 64), multi-head and grouped-query (4 kv heads)
    {"gpt2_bench_ctx32", 1, 32, 12, 12, 64, 0, 8},
    {"gpt2_bench_ctx128", 1, 128, 12, 12, 64, 0, 1},
    {"gpt2_bench_ctx256", 1, 256, 12, 12, 64, 0, 1},
    {"gqa_bench_ctx128", 1, 128, 12, 4, 64, 0, 1},
    // holdout: odd head size and counts, a single position, batch > 1 with one kv head
    {"odd_ctx77_nh6_kv2_hs80", 1, 77, 6, 2, 80, 1, 4},
    {"gpt2_ctx1", 1, 1, 12, 12, 64, 1, 1024},
    {"odd_b2_ctx50_nh4_kv1_hs24", 2, 50, 4, 1, 24, 1, 8},
    // defined but not in the default case lists (slow for the naive baseline: 0.2 s and 3 s per call)
    {"gqa_bench_ctx256", 1, 256, 12, 4, 64, 0, 1},
    {"gpt2_bench_ctx1024", 1, 1024, 12, 12, 64, 0, 1},
};

enum { OUT, Q, K, V };
#define ATOL 2e-4         // |out - ref| <= ATOL + RTOL * |ref|   (v is in [-1, 1])
#define RTOL 1e-3
#define BIG_SCORES 12.0f  // q, k in [-12, 12]: scores reach the hundreds, exp() overflows without the max
#define SPOT_ROWS 16

typedef struct {
    const att_case* c;
    int cut;       // call 3: positions after it were perturbed
    float* before; // call 2's output, which rows up to the cut must keep on call 3
} att_state;

static size_t qidx(const att_case* c, int b, int t, int h) { return (((size_t)b * c->T + t) * c->NH + h) * c->HS; }
static size_t kidx(const att_case* c, int b, int t, int h) { return (((size_t)b * c->T + t) * c->NKV + h) * c->HS; }

static int setup(ll_case* lc, const char* name) {
    const att_case* c = NULL;
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++)
        if (!strcmp(CASES[i].name, name)) c = &CASES[i];
    if (!c) return 0;
    if (c->HS > 512) {
        ll_fail(lc, "HS %d is larger than this harness supports (512)", c->HS);
        return 1;
    }
    size_t nq = (size_t)c->B * c->T * c->NH * c->HS, nkv = (size_t)c->B * c->T * c->NKV * c->HS;
    att_state* s = ll_alloc(lc, sizeof *s);
    s->c = c;
    s->before = ll_alloc(lc, nq * sizeof(float));
    ll_set_user(lc, s);
    ll_buffer(lc, "out", LL_F32, nq, LL_OUT, c->misalign);
    ll_buffer(lc, "q", LL_F32, nq, LL_IN, c->misalign);
    ll_buffer(lc, "k", LL_F32, nkv, LL_IN, c->misalign);
    ll_buffer(lc, "v", LL_F32, nkv, LL_IN, c->misalign);
    ll_int(lc, c->B); ll_int(lc, c->T); ll_int(lc, c->NH); ll_int(lc, c->NKV); ll_int(lc, c->HS);
    ll_batch(lc, c->batch);
    return 1;
}

static void fill(ll_case* lc, int set, float qk_scale) {
    ll_fill(lc, ll_in(lc, set, Q), ll_count(lc, Q), -qk_scale, qk_scale);
    ll_fill(lc, ll_in(lc, set, K), ll_count(lc, K), -qk_scale, qk_scale);
    ll_fill(lc, ll_in(lc, set, V), ll_count(lc, V), -1.0f, 1.0f);
}

// call 1: ordinary; call 2: large scores; call 3: call 2's inputs with huge values after a cut
static void inputs(ll_case* lc, int set, int call) {
    att_state* s = (att_state*)ll_user(lc);
    const att_case* c = s->c;
    if (call != 3) { fill(lc, set, call == 2 ? BIG_SCORES : 1.0f); return; }
    s->cut = c->T < 2 ? c->T : (int)(ll_rand(lc) % (uint64_t)(c->T - 1));
    float *q = ll_in(lc, set, Q), *k = ll_in(lc, set, K), *v = ll_in(lc, set, V);
    for (int b = 0; b < c->B; b++)
        for (int t = s->cut + 1; t < c->T; t++) {
            ll_fill(lc, q + qidx(c, b, t, 0), (size_t)c->NH * c->HS, -1e4f, 1e4f);
            ll_fill(lc, k + kidx(c, b, t, 0), (size_t)c->NKV * c->HS, -1e4f, 1e4f);
            ll_fill(lc, v + kidx(c, b, t, 0), (size_t)c->NKV * c->HS, -1e6f, 1e6f);
        }
}

// double-precision reference of out[b][t][h][:] against the row the target wrote
static int check_row(ll_case* lc, int set, int b, int t, int h, const char* when) {
    const att_case* c = ((const att_state*)ll_user(lc))->c;
    const float *q = ll_in(lc, set, Q), *k = ll_in(lc, set, K), *v = ll_in(lc, set, V);
    int kvh = h / (c->NH / c->NKV), HS = c->HS;
    const float* qt = q + qidx(c, b, t, h);
    double scale = 1.0 / sqrt((double)HS), maxv = -INFINITY, sum = 0.0, o[512], sc[1024];
    double* scores = t < 1024 ? sc : ll_alloc(lc, (size_t)(t + 1) * sizeof(double));
    for (int t2 = 0; t2 <= t; t2++) {
        const float* kt = k + kidx(c, b, t2, kvh);
        double d = 0.0;
        for (int i = 0; i < HS; i++) d += (double)qt[i] * kt[i];
        scores[t2] = d * scale;
        if (scores[t2] > maxv) maxv = scores[t2];
    }
    for (int i = 0; i < HS; i++) o[i] = 0.0;
    for (int t2 = 0; t2 <= t; t2++) {
        double w = exp(scores[t2] - maxv);
        const float* vt = v + kidx(c, b, t2, kvh);
        sum += w;
        for (int i = 0; i < HS; i++) o[i] += w * vt[i];
    }
    const float* got = (const float*)ll_out(lc, set, OUT) + qidx(c, b, t, h);
    for (int i = 0; i < HS; i++) {
        double want = o[i] / sum, tol = ATOL + RTOL * fabs(want);
        if (!ll_close(got[i], want, tol))
            return ll_fail(lc, "out[%d][%d][%d][%d] = %.7g, expected %.7g (|diff| %.3g > tol %.3g) %s",
                           b, t, h, i, got[i], want, fabs(got[i] - want), tol, when);
    }
    return 1;
}

static int check_all(ll_case* lc, int set, const char* when) {
    const att_case* c = ((const att_state*)ll_user(lc))->c;
    for (int b = 0; b < c->B; b++)
        for (int t = 0; t < c->T; t++)
            for (int h = 0; h < c->NH; h++)
                if (!check_row(lc, set, b, t, h, when)) return 0;
    return 1;
}

// rows up to the cut must be what call 2 gave: position t attends to positions 0..t only
static int check_causal(ll_case* lc, int set) {
    att_state* s = (att_state*)ll_user(lc);
    const att_case* c = s->c;
    const float* now = ll_out(lc, set, OUT);
    for (int b = 0; b < c->B; b++)
        for (int t = 0; t <= s->cut && t < c->T; t++)
            for (int h = 0; h < c->NH; h++)
                for (int i = 0; i < c->HS; i++) {
                    size_t at = qidx(c, b, t, h) + i;
                    double was = s->before[at];
                    if (!ll_close(now[at], was, ATOL + RTOL * fabs(was)))
                        return ll_fail(lc, "out[%d][%d][%d][%d] changed from %.7g to %.7g on call 3 when only positions > %d "
                                       "changed: position t must attend to positions 0..t only", b, t, h, i, was, now[at], s->cut);
                }
    return 1;
}

static int check(ll_case* lc, int set, int call) {
    att_state* s = (att_state*)ll_user(lc);
    const att_case* c = s->c;
    if (call == 1) return check_all(lc, set, "on call 1");
    if (call == 2) {
        if (!check_all(lc, set, "on call 2 (large scores: subtract the max before exp)")) return 0;
        memcpy(s->before, ll_out(lc, set, OUT), ll_count(lc, OUT) * sizeof(float));
        return 1;
    }
    if (call == 3) return check_causal(lc, set);
    char when[32];
    snprintf(when, sizeof when, "on call %d", call);
    if (!check_row(lc, set, c->B - 1, c->T - 1, (int)ll_pick(lc, c->NH), when)) return 0;
    for (int j = 0; j < SPOT_ROWS; j++)
        if (!check_row(lc, set, (int)ll_pick(lc, c->B), (int)ll_pick(lc, c->T), (int)ll_pick(lc, c->NH), when)) return 0;
    return 1;
}

static void metrics(ll_case* lc, double median_us) {
    const att_case* c = ((const att_state*)ll_user(lc))->c;
    double flops = 4.0 * c->B * c->NH * c->HS * ((double)c->T * (c->T + 1) / 2);
    ll_metric(lc, "\"gflops\": %.3f", flops / median_us / 1e3);
}

// calls 1-3 untimed (ordinary, large scores, causality); then 3..10 timed samples within 0.25 s
const ll_harness LL_HARNESS = {.setup = setup, .inputs = inputs, .check = check, .metrics = metrics,
                               .warmup = 3, .budget_us = 250000.0, .min_reps = 3, .max_reps = 10};

#endif

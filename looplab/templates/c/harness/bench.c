// Validates and times __FUNC__() on looplab's harness library (looplab.h, found through
// -I{looplab_include}). This one file is built twice: as the trusted supervisor, which makes the
// inputs, times every call and checks it, and with -DLOOPLAB_WORKER as the confined worker that
// holds the candidate. Results are one JSON line per case, printed by the supervisor only:
//   {"case": "n64k", "ok": true, "samples_us": [...]}   or   {"case": "n64k", "ok": false, "error": "..."}
//
// To adapt it to your function: change the declaration and ll_target (worker side), the case table,
// setup() (the call's buffers and integers), inputs() and check() (supervisor side). The library
// adds canaries, poisoned outputs, input integrity, NaN/Inf, timing and batching.
#include "looplab.h"

#ifdef LOOPLAB_WORKER

void __FUNC__(float* out, const float* x, int n);

// the worker side: call the target with one call's arguments, in the order setup() declared them
void ll_target(const ll_args* a) { __FUNC__(a->p[0], a->p[1], a->n[0]); }

#else

#include <string.h>

typedef struct {
    const char* name;
    int n;
    float scale;   // inputs uniform in [-scale, scale)
    int misalign;  // buffers one float off the 64-byte boundary
} bench_case;

static const bench_case CASES[] = {
    // search cases: shown to the model, decide acceptance
    {"n1k", 1024, 1.0f, 0},
    {"n64k", 65536, 1.0f, 0},
    {"n1m", 1 << 20, 1.0f, 0},
    // holdout cases: never shown; odd sizes, unaligned buffers, large magnitudes catch overfitting
    {"n1", 1, 1.0f, 1},
    {"n1001_unaligned", 1001, 1.0f, 1},
    {"n4099_bigmag", 4099, 1e6f, 1},
};

enum { OUT, X };
#define TOL 1e-5  // |out[i] - ref[i]| <= TOL * sum_{j<=i} |x[j]|   (state it in EXPERIMENT.md)

static int setup(ll_case* c, const char* name) {
    const bench_case* k = NULL;
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++)
        if (!strcmp(CASES[i].name, name)) k = &CASES[i];
    if (!k) return 0;
    ll_set_user(c, k);
    ll_buffer(c, "out", LL_F32, (size_t)k->n, LL_OUT, k->misalign);
    ll_buffer(c, "x", LL_F32, (size_t)k->n, LL_IN, k->misalign);
    ll_int(c, k->n);
    // about a million elements per timed sample: tiny cases batch many calls, so the supervisor's
    // handshake (~10 us) stays a few percent of a sample
    long calls = (1L << 20) / k->n;
    ll_batch(c, calls < 1 ? 1 : calls > 4096 ? 4096 : (int)calls);
    return 1;
}

// Fresh random inputs for every call: a candidate cannot cache results by pointer or content.
static void inputs(ll_case* c, int set, int call) {
    (void)call;
    const bench_case* k = ll_user(c);
    ll_fill(c, ll_in(c, set, X), (size_t)k->n, -k->scale, k->scale);
}

// Every element of every call against a double-precision reference.
static int check(ll_case* c, int set, int call) {
    const bench_case* k = ll_user(c);
    const float* x = ll_in(c, set, X);
    const float* out = ll_out(c, set, OUT);
    double acc = 0.0, mag = 0.0;
    for (int i = 0; i < k->n; i++) {
        acc += x[i];
        mag += fabs(x[i]);
        double tol = TOL * mag + 1e-30;
        if (!ll_close(out[i], acc, tol))
            return ll_fail(c, "out[%d] = %.9g, expected %.9g (tol %.3g) on call %d", i, out[i], acc, tol, call);
    }
    return 1;
}

// call 1 untimed (warm-up, checked like every other); then 3..10 timed samples within 0.2 s
const ll_harness LL_HARNESS = {.setup = setup, .inputs = inputs, .check = check,
                               .warmup = 1, .budget_us = 200000.0, .min_reps = 3, .max_reps = 10};

#endif

// Validates and times __FUNC__(); prints one JSON object per case (looplab's evaluator protocol):
//   {"case": "n64k", "ok": true, "samples_us": [...]}   or   {"case": "n64k", "ok": false, "error": "..."}
// looplab owns the statistics: report raw per-call timings, never a verdict.
//
// To adapt it to your function: change the declaration, the case table, refill(), ref() and
// the call in call_checked(). Keep the checks: each one stops a way of looking fast while wrong.
#include "looplab_harness.h"

void __FUNC__(float* out, const float* x, int n);

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

#define TOL 1e-5            // |out[i] - ref[i]| <= TOL * sum_{j<=i} |x[j]|   (state it in EXPERIMENT.md)
#define BUDGET_US 200000.0  // timed calls per case: as many as fit, 3..10

typedef struct {
    const bench_case* c;
    ll_buf out, x;
    uint64_t hx;
    double* ref;  // double-precision reference of the current inputs
    double* mag;  // the magnitude each tolerance scales with
} state;

// Fresh random inputs in the same buffers: a candidate cannot cache results by pointer or content.
static void refill(state* s, ll_rng* r) {
    ll_fill(r, s->x.p, s->x.n, -s->c->scale, s->c->scale);
    double acc = 0.0, mag = 0.0;
    for (int i = 0; i < s->c->n; i++) {
        acc += s->x.p[i];
        mag += fabs(s->x.p[i]);
        s->ref[i] = acc;
        s->mag[i] = mag;
    }
    ll_buf_poison(&s->out);  // outputs left unwritten are caught
    s->hx = ll_hash(s->x.p, s->x.n * sizeof(float));
}

// One call, timed; then everything that must hold after any call. Returns microseconds, or -1 after ll_fail.
static double call_checked(state* s, int call) {
    const char* name = s->c->name;
    double t0 = ll_now_us();
    __FUNC__(s->out.p, s->x.p, s->c->n);
    double t1 = ll_now_us();
    if (ll_buf_canaries(&s->out)) { ll_fail(name, "wrote outside the out buffer on call %d", call); return -1; }
    if (ll_buf_canaries(&s->x)) { ll_fail(name, "wrote outside the x buffer on call %d", call); return -1; }
    if (ll_hash(s->x.p, s->x.n * sizeof(float)) != s->hx) { ll_fail(name, "modified x (it is const) on call %d", call); return -1; }
    int threads = ll_thread_count();
    if (threads > 1) { ll_fail(name, "%d threads alive after call %d (single thread only)", threads, call); return -1; }
    for (int i = 0; i < s->c->n; i++) {
        double tol = TOL * s->mag[i] + 1e-30;
        if (!ll_close(s->out.p[i], s->ref[i], tol)) {
            ll_fail(name, "out[%d] = %.9g, expected %.9g (tol %.3g) on call %d", i, s->out.p[i], s->ref[i], tol, call);
            return -1;
        }
    }
    return t1 - t0;
}

static void run_case(const char* name, ll_rng* r) {
    const bench_case* c = NULL;
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++)
        if (!strcmp(CASES[i].name, name)) c = &CASES[i];
    if (!c) { ll_fail(name, "unknown case"); return; }

    state s = {.c = c};
    s.out = ll_buf_new((size_t)c->n, c->misalign, r);
    s.x = ll_buf_new((size_t)c->n, c->misalign, r);
    s.ref = malloc((size_t)c->n * sizeof(double));
    s.mag = malloc((size_t)c->n * sizeof(double));

    refill(&s, r);
    double first = call_checked(&s, 1);  // warm-up, validated like every other call
    double samples[10];
    int reps = ll_reps(first, BUDGET_US, 3, 10), ok = first >= 0;
    for (int i = 0; ok && i < reps; i++) {
        refill(&s, r);
        samples[i] = call_checked(&s, i + 2);
        ok = samples[i] >= 0;
    }
    if (ok) ll_ok(name, samples, reps, "");
    ll_buf_free(&s.out);
    ll_buf_free(&s.x);
    free(s.ref);
    free(s.mag);
}

int main(int argc, char** argv) { return ll_main(argc, argv, run_case); }

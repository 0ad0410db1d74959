// Validates and times the Rust crate's sort_pairs() on looplab's harness library (looplab.h): built
// once as the trusted supervisor (this file + supervisor.c, no Rust in it) and once, with
// -DLOOPLAB_WORKER, as the confined worker that links the crate's static library.
//
// sort_pairs(keys, vals, n) sorts n (key, value) pairs by key in place, stably. Every call gets
// fresh random pairs; every call (warm-up and timed) is compared element by element with the
// supervisor's own stable sort. The library checks canaries, timing, threads and system calls.
#include "looplab.h"

#ifdef LOOPLAB_WORKER

#include <stddef.h>
#include <sys/syscall.h>
#include <unistd.h>

// Exported by the crate (src/lib.rs): #[no_mangle] pub unsafe extern "C" fn sort_pairs(...)
void sort_pairs(uint32_t* keys, uint32_t* vals, size_t n);

void ll_target(const ll_args* a) { sort_pairs(a->p[0], a->p[1], (size_t)a->n[0]); }

// A Rust panic (the crate is built with panic = "abort") prints its message to stderr and calls
// abort(). glibc's abort() first changes the signal mask (rt_sigprocmask) and then sends itself
// SIGABRT (tgkill), which the worker's seccomp filter refuses: the supervisor would report a
// "forbidden system call rt_sigprocmask". The worker's own abort() ends the process with exit status
// 134 instead (exit_group is allowed), which the supervisor reports as a crash of the target.
_Noreturn void abort(void) {
    static const char msg[] = "looplab worker: the target aborted (a Rust panic: its message is above)\n";
    (void)!write(2, msg, sizeof msg - 1);
    syscall(SYS_exit_group, 134);
    for (;;) {}
}

#else

#include <stdio.h>
#include <string.h>

typedef enum {
    RANDOM,    // keys uniform over all of u32
    NARROW,    // keys uniform in [0, range): many equal keys, so stability matters
    SORTED,    // already ascending, with runs of equal keys
    REVERSE,   // strictly descending
    EQUAL,     // one key for every pair: the output is the input
    HIGHBITS,  // only the top byte varies, the low 24 bits are zero
} key_kind;

typedef struct {
    const char* name;
    long n;
    key_kind kind;
    uint32_t range;  // NARROW: keys in [0, range)
    int misalign;    // buffers one element (4 bytes) off the 64-byte boundary
    int batch;       // calls per timed sample: small cases amortise the supervisor's handshake
} sort_case;

static const sort_case CASES[] = {
    // search: shown to the model
    {"random_1k", 1000, RANDOM, 0, 0, 128},
    {"random_64k", 65536, RANDOM, 0, 0, 2},
    {"random_256k", 262144, RANDOM, 0, 0, 1},
    {"narrow_256k", 262144, NARROW, 1000, 0, 1},
    // holdout: never shown; sizes, orders and key distributions a shortcut could get wrong
    {"empty_0", 0, RANDOM, 0, 0, 1024},
    {"single_1", 1, RANDOM, 0, 1, 1024},
    {"odd_7", 7, NARROW, 3, 1, 1024},
    {"odd_33_narrow", 33, NARROW, 5, 0, 512},
    {"sorted_100003", 100003, SORTED, 0, 0, 2},
    {"reverse_65537", 65537, REVERSE, 0, 1, 4},
    {"equal_50000", 50000, EQUAL, 0, 0, 4},
    {"highbits_200003", 200003, HIGHBITS, 0, 1, 1},
    {"random_unaligned_400009", 400009, RANDOM, 0, 1, 1},
};

enum { KEYS, VALS };

typedef struct {
    const sort_case* k;
    uint32_t *ref_k, *ref_v, *tmp_k, *tmp_v;  // the supervisor's own stable sort
} sort_state;

static int setup(ll_case* c, const char* name) {
    const sort_case* k = NULL;
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++)
        if (!strcmp(CASES[i].name, name)) k = &CASES[i];
    if (!k) return 0;
    sort_state* s = ll_alloc(c, sizeof *s);
    size_t bytes = (size_t)k->n * sizeof(uint32_t);
    s->k = k;
    s->ref_k = ll_alloc(c, bytes), s->ref_v = ll_alloc(c, bytes);
    s->tmp_k = ll_alloc(c, bytes), s->tmp_v = ll_alloc(c, bytes);
    ll_set_user(c, s);
    ll_buffer(c, "keys", LL_I32, (size_t)k->n, LL_INOUT, k->misalign);
    ll_buffer(c, "vals", LL_I32, (size_t)k->n, LL_INOUT, k->misalign);
    ll_int(c, k->n);
    ll_batch(c, k->batch);
    return 1;
}

static void inputs(ll_case* c, int set, int call) {
    (void)call;
    const sort_state* s = ll_user(c);
    const sort_case* k = s->k;
    uint32_t* keys = ll_in(c, set, KEYS);
    uint32_t* vals = ll_in(c, set, VALS);
    uint32_t one = (uint32_t)ll_rand(c), at = (uint32_t)(ll_rand(c) >> 40);  // EQUAL's key, SORTED's start
    for (long i = 0; i < k->n; i++) {
        uint64_t r = ll_rand(c);
        switch (k->kind) {
            case RANDOM: keys[i] = (uint32_t)r; break;
            case NARROW: keys[i] = (uint32_t)((r & 0xffffffffu) % k->range); break;
            case SORTED: keys[i] = at += (uint32_t)(r & 3); break;  // steps of 0..3: runs of equal keys
            case REVERSE: keys[i] = (uint32_t)(k->n - i) * 977u + (uint32_t)(r & 7); break;
            case EQUAL: keys[i] = one; break;
            case HIGHBITS: keys[i] = (uint32_t)r & 0xff000000u; break;
        }
        vals[i] = (uint32_t)(r >> 32);
    }
}

// Stable LSD radix sort of (keys, vals) into (s->ref_k, s->ref_v): four passes of 8 bits.
static void reference(sort_state* s, const uint32_t* keys, const uint32_t* vals, size_t n) {
    memcpy(s->ref_k, keys, n * sizeof *keys);
    memcpy(s->ref_v, vals, n * sizeof *vals);
    uint32_t *sk = s->ref_k, *sv = s->ref_v, *dk = s->tmp_k, *dv = s->tmp_v;
    for (int shift = 0; shift < 32; shift += 8) {
        size_t pos[257] = {0};
        for (size_t i = 0; i < n; i++) pos[((sk[i] >> shift) & 0xff) + 1]++;
        for (int d = 0; d < 256; d++) pos[d + 1] += pos[d];
        for (size_t i = 0; i < n; i++) {
            size_t at = pos[(sk[i] >> shift) & 0xff]++;
            dk[at] = sk[i], dv[at] = sv[i];
        }
        uint32_t *t = sk; sk = dk; dk = t;
        t = sv; sv = dv; dv = t;
    }
    // four passes: the sorted pairs are back in ref_k / ref_v
}

static int check(ll_case* c, int set, int call) {
    sort_state* s = (sort_state*)ll_user(c);
    size_t n = (size_t)s->k->n;
    reference(s, ll_in(c, set, KEYS), ll_in(c, set, VALS), n);
    const uint32_t* got_k = ll_out(c, set, KEYS);
    const uint32_t* got_v = ll_out(c, set, VALS);
    for (size_t i = 0; i < n; i++) {
        if (got_k[i] != s->ref_k[i]) {
            if (i > 0 && got_k[i] < got_k[i - 1])
                return ll_fail(c, "keys not ascending: keys[%zu] = %u after keys[%zu] = %u (n = %zu) on call %d",
                               i, got_k[i], i - 1, got_k[i - 1], n, call);
            return ll_fail(c, "keys[%zu] = %u, expected %u: the output keys are not the input keys sorted "
                           "(n = %zu) on call %d", i, got_k[i], s->ref_k[i], n, call);
        }
        if (got_v[i] != s->ref_v[i])
            return ll_fail(c, "vals[%zu] = %u, expected %u (key %u): a value was lost, or pairs with equal keys "
                           "did not keep their input order (the sort must be stable) (n = %zu) on call %d",
                           i, got_v[i], s->ref_v[i], got_k[i], n, call);
    }
    return 1;
}

static void metrics(ll_case* c, double median_us) {
    const sort_state* s = ll_user(c);
    if (median_us > 0) ll_metric(c, "\"mpairs_per_s\": %.2f", (double)s->k->n / median_us);
    ll_metric(c, "\"n\": %ld", s->k->n);
}

// warm-up call 1 untimed; then 5..20 timed samples, as many as fit 0.1 s. Samples stay short (a few ms
// at most) and many, so the median is not moved by the odd one another process's time slice lengthened.
const ll_harness LL_HARNESS = {.setup = setup, .inputs = inputs, .check = check, .metrics = metrics,
                               .warmup = 1, .budget_us = 100000.0, .min_reps = 5, .max_reps = 20};

#endif

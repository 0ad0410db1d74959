/* looplab.h — the harness library for C experiments: a trusted supervisor and a confined worker.
 *
 * One harness source per experiment (harness/bench.c), built twice:
 *
 *   gcc ... -I{looplab_include} -o {binary} harness/bench.c {looplab_include}/supervisor.c -lm -lseccomp
 *   gcc ... -I{looplab_include} -DLOOPLAB_WORKER -o {binary}.worker harness/bench.c \
 *       {looplab_include}/worker.c {candidate} -lm -lseccomp
 *
 * and run as `{binary} --nonce {nonce} {cases}`. The supervisor never links candidate code. For
 * each case it starts a fresh worker (no argv, no environment, no nonce, no case name, stdout on
 * /dev/null), which maps a shared arena and confines itself with a seccomp allowlist before any
 * candidate code runs. The supervisor then makes the inputs from a key drawn from getrandom(),
 * times each call itself (the worker is stopped outside the timed window; a sample is the worker's
 * kernel-accounted CPU time in it), verifies the output with choices it draws after the call, and
 * alone prints the result lines.
 *
 * The experiment writes three small things (see experiments/linear/harness/bench.c):
 *   worker side (#ifdef LOOPLAB_WORKER)  ll_target(): call the target with the call's arguments;
 *   supervisor side                      LL_HARNESS: setup (declare a case's buffers and integers),
 *                                        inputs (fill one input set), check (verify one call).
 * The library does the rest: arena, canaries around every buffer, poisoned outputs, input integrity,
 * NaN/Inf, timing, batching, failure reasons and the protocol line.
 */
#ifndef LOOPLAB_H
#define LOOPLAB_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#define LL_MAX_BUFS 8  /* pointer arguments per call */
#define LL_MAX_INTS 8  /* integer arguments per call */

/* ---------- worker side: what the target gets ---------- */

typedef struct {
    void* p[LL_MAX_BUFS];  /* buffer arguments in declaration order; NULL where declared with ll_null */
    long n[LL_MAX_INTS];   /* integer arguments in declaration order */
} ll_args;

#ifdef LOOPLAB_WORKER

/* Defined by the experiment: call the target once with these arguments. */
void ll_target(const ll_args* a);

#else /* ---------- supervisor side ---------- */

typedef enum { LL_F32 = 1, LL_F64, LL_I32, LL_I64, LL_U8 } ll_type;
enum { LL_IN = 1, LL_OUT = 2, LL_INOUT = 3 };  /* a buffer's role */

typedef struct ll_case ll_case;

typedef struct {
    /* Declare the case's call (ll_buffer, ll_null, ll_int, ll_batch); 0 = unknown case name. */
    int (*setup)(ll_case* c, const char* name);
    /* Fill the inputs of `set` for call number `call` (1-based) with ll_in() and ll_fill(). */
    void (*inputs)(ll_case* c, int set, int call);
    /* Verify call `call` (its output in ll_out(c, set, ...)); 1 = right, else return ll_fail(...). */
    int (*check)(ll_case* c, int set, int call);
    /* Optional: extra keys for a valid case's result line (ll_metric), given the median call time. */
    void (*metrics)(ll_case* c, double median_us);
    int warmup;        /* untimed, checked calls before the timed ones (at least 1) */
    double budget_us;  /* timed calls per case: as many as fit this budget, min_reps..max_reps */
    int min_reps, max_reps;
} ll_harness;

/* Defined by the experiment. */
extern const ll_harness LL_HARNESS;

/* -- setup: the call's arguments, in the order ll_target reads them -- */

/* A buffer of `count` elements; misalign=1 shifts it one element off the 64-byte boundary. Returns its slot. */
int ll_buffer(ll_case* c, const char* name, ll_type type, size_t count, int role, int misalign);
int ll_null(ll_case* c, const char* name);  /* a pointer argument passed as NULL */
int ll_int(ll_case* c, long value);         /* an integer argument; returns its slot */
void ll_batch(ll_case* c, int calls);       /* calls per timed sample (small cases: amortise the handshake) */
void ll_set_user(ll_case* c, const void* user);
const void* ll_user(const ll_case* c);
void* ll_alloc(ll_case* c, size_t bytes);   /* zeroed scratch memory, freed when the case ends */

/* -- data: inputs are the supervisor's own copies (the truth); outputs a snapshot taken after the call -- */

void* ll_in(ll_case* c, int set, int slot);
void* ll_out(ll_case* c, int set, int slot);
size_t ll_count(const ll_case* c, int slot);

/* -- random numbers -- */

/* Inputs: a ChaCha20 stream keyed by 256 bits from getrandom() (or --seed), drawn after the worker started. */
uint64_t ll_rand(ll_case* c);
float ll_uniform(ll_case* c, float lo, float hi);            /* uniform in [lo, hi) */
void ll_fill(ll_case* c, float* p, size_t n, float lo, float hi);
void ll_fill_f64(ll_case* c, double* p, size_t n, double lo, double hi);
/* Verification choices: uniform in [0, n), from a key drawn from getrandom() after the call returned. */
long ll_pick(ll_case* c, long n);

/* -- verdicts -- */

int ll_fail(ll_case* c, const char* fmt, ...) __attribute__((format(printf, 2, 3)));  /* returns 0 */
void ll_metric(ll_case* c, const char* fmt, ...) __attribute__((format(printf, 2, 3)));  /* `"key": value` */

/* |got - want| <= tol, and got finite */
static inline int ll_close(double got, double want, double tol) { return isfinite(got) && fabs(got - want) <= tol; }

#endif /* LOOPLAB_WORKER */
#endif /* LOOPLAB_H */

/* looplab_harness.h — validation and timing helpers for looplab C harnesses.
 *
 * Header-only. Every function is static (and inline, so unused ones cost nothing): a candidate
 * cannot replace one, and looplab's build refuses candidates that export anything besides the
 * target. Include it FIRST in the harness (it sets _POSIX_C_SOURCE). The harness prints one JSON
 * object per case on stdout (with "nonce" when run with --nonce):
 *   {"case": "name", "ok": true, "samples_us": [...], "gflops": 12.3}
 *   {"case": "name", "ok": false, "error": "max abs diff 3.1e-2 at [0,5]"}
 * The candidate never sees the real stdout: ll_main points fd 1 at /dev/null and keeps a
 * private copy for the JSON, so a candidate cannot print fake results.
 */
#ifndef LOOPLAB_HARNESS_H
#define LOOPLAB_HARNESS_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---------- random numbers: splitmix64, one stream per (seed, case) ---------- */

typedef struct { uint64_t s; } ll_rng;

static inline uint64_t ll_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t ll_next(ll_rng* r) { return ll_mix64(r->s += 0x9e3779b97f4a7c15ULL); }

/* uniform in [lo, hi) */
static inline float ll_uniform(ll_rng* r, float lo, float hi) {
    return lo + (hi - lo) * (float)((ll_next(r) >> 40) * (1.0 / 16777216.0));
}

static inline int ll_randint(ll_rng* r, int n) { return (int)(ll_next(r) % (uint64_t)(n > 0 ? n : 1)); }

static inline void ll_fill(ll_rng* r, float* p, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) p[i] = ll_uniform(r, lo, hi);
}

/* ---------- time ---------- */

static inline double ll_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* ---------- guarded buffers: canaries on both sides of every output ---------- */

#define LL_CANARY_BYTES 256

typedef struct {
    float* p;            /* the data the candidate sees */
    size_t n;            /* floats */
    unsigned char* raw;  /* allocation: [canary][data][canary] */
    unsigned char pattern[LL_CANARY_BYTES];
} ll_buf;

/* misalign=1 shifts the data by one float off the 64-byte boundary (candidates must not assume alignment). */
static inline ll_buf ll_buf_new(size_t n, int misalign, ll_rng* r) {
    ll_buf b;
    size_t shift = misalign ? sizeof(float) : 0;
    size_t bytes = LL_CANARY_BYTES + shift + n * sizeof(float) + LL_CANARY_BYTES;
    if (posix_memalign((void**)&b.raw, 64, bytes) != 0) { perror("posix_memalign"); exit(3); }
    for (int i = 0; i < LL_CANARY_BYTES; i++) b.pattern[i] = (unsigned char)ll_next(r);
    b.p = (float*)(b.raw + LL_CANARY_BYTES + shift);
    b.n = n;
    memcpy(b.raw + shift, b.pattern, LL_CANARY_BYTES);
    memcpy((unsigned char*)(b.p + n), b.pattern, LL_CANARY_BYTES);
    memset(b.p, 0, n * sizeof(float));
    return b;
}

/* 0 when intact; -1 when bytes before the buffer changed; +1 when bytes after it changed. */
static inline int ll_buf_canaries(const ll_buf* b) {
    if (memcmp((const unsigned char*)b->p - LL_CANARY_BYTES, b->pattern, LL_CANARY_BYTES) != 0) return -1;
    if (memcmp((const unsigned char*)(b->p + b->n), b->pattern, LL_CANARY_BYTES) != 0) return 1;
    return 0;
}

/* Fill with a value no correct candidate leaves behind, so unwritten outputs are caught. */
static inline void ll_buf_poison(ll_buf* b) {
    for (size_t i = 0; i < b->n; i++) b->p[i] = -7.77e33f;
}

static inline void ll_buf_free(ll_buf* b) { free(b->raw); b->raw = NULL; b->p = NULL; }

/* ---------- input integrity ---------- */

/* 64-bit hash of the bytes (inputs must be unchanged after every call). */
static inline uint64_t ll_hash(const void* data, size_t bytes) {
    const unsigned char* p = (const unsigned char*)data;
    uint64_t h = 0x243f6a8885a308d3ULL ^ bytes;
    size_t i = 0;
    for (; i + 8 <= bytes; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = ll_mix64(h ^ w);
    }
    for (; i < bytes; i++) h = ll_mix64(h ^ p[i]);
    return h;
}

/* index of the first NaN/Inf, or -1 */
static inline long ll_first_nonfinite(const float* p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(p[i])) return (long)i;
    return -1;
}

/* |got - want| <= tol, and got finite */
static inline int ll_close(double got, double want, double tol) {
    return isfinite(got) && fabs(got - want) <= tol;
}

/* Number of threads in this process, or -1 when /proc is not mounted (then the check is skipped). */
static inline int ll_thread_count(void) {
    DIR* d = opendir("/proc/self/task");
    if (!d) return -1;
    int n = 0;
    struct dirent* e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* ---------- JSON output ---------- */

static FILE* ll_out;  /* the real stdout; fd 1 points at /dev/null while candidates run */
static const char* ll_nonce;  /* --nonce VALUE: echoed in every line so looplab can tell ours from forgeries */

static inline void ll_json_string(const char* s) {
    fputc('"', ll_out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(ll_out, "\\%c", c);
        else if (c < 0x20) fprintf(ll_out, "\\u%04x", c);
        else fputc(c, ll_out);
    }
    fputc('"', ll_out);
}

/* {"case": NAME, ["nonce": ..., ] — the start every result line shares */
static inline void ll_line_start(const char* case_name) {
    fputs("{\"case\": ", ll_out);
    ll_json_string(case_name);
    if (ll_nonce) {
        fputs(", \"nonce\": ", ll_out);
        ll_json_string(ll_nonce);
    }
}

/* Report a failed case; the message says what was wrong and where. */
static inline void ll_fail(const char* case_name, const char* fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ll_line_start(case_name);
    fputs(", \"ok\": false, \"error\": ", ll_out);
    ll_json_string(msg);
    fputs("}\n", ll_out);
    fflush(ll_out);
}

/* Report a valid case with its raw per-call timings; extra_json is "" or e.g. "\"gflops\": 12.5". */
static inline void ll_ok(const char* case_name, const double* samples_us, int n, const char* extra_json) {
    ll_line_start(case_name);
    fputs(", \"ok\": true, \"samples_us\": [", ll_out);
    /* a call shorter than the clock's resolution still took time: never print 0 */
    for (int i = 0; i < n; i++) fprintf(ll_out, "%s%.3f", i ? ", " : "", samples_us[i] > 0.001 ? samples_us[i] : 0.001);
    fputc(']', ll_out);
    if (extra_json && *extra_json) fprintf(ll_out, ", %s", extra_json);
    fputs("}\n", ll_out);
    fflush(ll_out);
}

/* ---------- sample counts ---------- */

static int ll_max_reps = 1000;  /* --max-reps N: fewer timed calls, for quick validity checks */

/* How many timed calls fit a per-case budget, given one call's time; at least lo, at most hi. */
static inline int ll_reps(double call_us, double budget_us, int lo, int hi) {
    if (hi > ll_max_reps) hi = ll_max_reps;
    if (lo > hi) lo = hi;
    double n = call_us > 0 ? budget_us / call_us : hi;
    return n < lo ? lo : n > hi ? hi : (int)n;
}

/* median of n samples (n <= 64) */
static inline double ll_median(const double* x, int n) {
    double s[64];
    if (n <= 0) return 0.0;
    if (n > 64) n = 64;
    memcpy(s, x, (size_t)n * sizeof(double));
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && s[j] < s[j - 1]; j--) { double t = s[j]; s[j] = s[j - 1]; s[j - 1] = t; }
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

/* ---------- main ---------- */

/* The harness's per-case function: validate, time, then call ll_ok or ll_fail exactly once. */
typedef void (*ll_case_fn)(const char* case_name, ll_rng* rng);

/* Usage: PROGRAM [--seed N] [--nonce S] [--max-reps N] CASE... ; runs exactly the named cases, in order. */
static inline int ll_main(int argc, char** argv, ll_case_fn run_case) {
    uint64_t seed = 0;
    int out_fd = dup(1);
    ll_out = out_fd >= 0 ? fdopen(out_fd, "w") : NULL;
    if (!ll_out) { perror("looplab harness: stdout"); return 3; }
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0) { fflush(stdout); dup2(devnull, 1); close(devnull); }
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
            seed = strtoull(argv[++i], NULL, 10);
            continue;
        }
        if (!strcmp(argv[i], "--nonce") && i + 1 < argc) {
            ll_nonce = argv[++i];
            continue;
        }
        if (!strcmp(argv[i], "--max-reps") && i + 1 < argc) {
            int n = atoi(argv[++i]);
            ll_max_reps = n > 0 ? n : 1;
            continue;
        }
        ll_rng rng = {ll_mix64(seed) ^ ll_hash(argv[i], strlen(argv[i]))};
        run_case(argv[i], &rng);
    }
    fflush(ll_out);
    return 0;
}

#endif /* LOOPLAB_HARNESS_H */

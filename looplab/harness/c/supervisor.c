/* supervisor.c — the trusted half of a C harness: never linked with candidate code.
 *
 * Usage: BINARY [--nonce S] [--max-reps N] [--call-timeout SECONDS] [--seed X] CASE...
 * Runs exactly the named cases, in order, and prints one JSON line per case (looplab's protocol).
 * Per case: a fresh worker (BINARY.worker), a fresh arena, a fresh key; a handshake measurement;
 * `warmup` untimed checked calls; then timed samples of `batch` calls each, every call checked.
 * A sample (samples_us, per call) is the worker's CPU time in the timed window (sv_worker.c says
 * why); the window's wall time per call is printed beside it as wall_us.
 * --seed X only reproduces inputs when debugging (X = a printed inputs_seed); looplab never passes it.
 *
 * Build commands name only this file: its parts are compiled in here as one translation unit.
 */
#include "sv_internal.h"

#include <sys/prctl.h>

#include "sv_arena.c"
#include "sv_rng.c"
#include "sv_worker.c"

const char* ll_nonce;
const char* ll_seed;
int ll_max_reps = 1000;
double ll_call_timeout_s = 30.0;
static char worker_path[4096];

/* ---------- the experiment's setup calls ---------- */

int ll_buffer(ll_case* c, const char* name, ll_type type, size_t count, int role, int misalign) {
    static const size_t esize[] = {0, 4, 8, 4, 8, 1};
    if (c->nbuf >= LL_MAX_BUFS || type < LL_F32 || type > LL_U8 || role < LL_IN || role > LL_INOUT) {
        ll_fail_as(c, "crash", "harness error: bad buffer %s (at most %d buffers)", name, LL_MAX_BUFS);
        return -1;
    }
    ll_bufspec* b = &c->buf[c->nbuf];
    snprintf(b->name, sizeof b->name, "%s", name);
    b->type = type, b->count = count, b->esize = esize[type], b->bytes = count * esize[type];
    b->role = role, b->misalign = misalign != 0;
    return c->nbuf++;
}

int ll_null(ll_case* c, const char* name) {
    int slot = ll_buffer(c, name, LL_U8, 0, LL_IN, 0);
    if (slot >= 0) c->buf[slot].absent = 1;
    return slot;
}

int ll_int(ll_case* c, long value) {
    if (c->nint >= LL_MAX_INTS) { ll_fail_as(c, "crash", "harness error: more than %d integer arguments", LL_MAX_INTS); return -1; }
    c->ints[c->nint] = value;
    return c->nint++;
}

void ll_batch(ll_case* c, int calls) { c->batch = calls < 1 ? 1 : calls > LL_MAX_BATCH ? LL_MAX_BATCH : calls; }
void ll_set_user(ll_case* c, const void* user) { c->user = user; }
const void* ll_user(const ll_case* c) { return c->user; }
size_t ll_count(const ll_case* c, int slot) { return c->buf[slot].count; }
void* ll_in(ll_case* c, int set, int slot) { return c->buf[slot].priv + (size_t)set * c->buf[slot].bytes; }
void* ll_out(ll_case* c, int set, int slot) { return c->buf[slot].snap + (size_t)set * c->buf[slot].bytes; }

void* ll_alloc(ll_case* c, size_t bytes) {
    void* p = calloc(1, bytes ? bytes : 1);
    void** list = realloc(c->allocs, (size_t)(c->nallocs + 1) * sizeof *list);
    if (!p || !list) { perror("looplab supervisor: ll_alloc"); exit(3); }
    c->allocs = list;
    c->allocs[c->nallocs++] = p;
    return p;
}

/* ---------- verdicts ---------- */

static int vfail(ll_case* c, const char* failure, const char* fmt, va_list ap) {
    if (c->failed) return 0;  /* the first failure is the one reported */
    c->failed = 1;
    c->failure = failure;
    vsnprintf(c->error, sizeof c->error, fmt, ap);
    return 0;
}

int ll_fail_as(ll_case* c, const char* failure, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfail(c, failure, fmt, ap);
    va_end(ap);
    return 0;
}

int ll_fail(ll_case* c, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfail(c, "invalid", fmt, ap);
    va_end(ap);
    return 0;
}

void ll_metric(ll_case* c, const char* fmt, ...) {
    size_t used = strlen(c->metrics);
    if (used + 3 >= sizeof c->metrics) return;
    if (used) strcpy(c->metrics + used, ", "), used += 2;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->metrics + used, sizeof c->metrics - used, fmt, ap);
    va_end(ap);
}

/* ---------- result lines: written by the supervisor only, to a stdout the worker never holds ---------- */

static void json_string(const char* s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') printf("\\%c", ch);
        else if (ch < 0x20) printf("\\u%04x", ch);
        else putchar(ch);
    }
    putchar('"');
}

static void line_start(const char* name) {
    fputs("{\"case\": ", stdout);
    json_string(name);
    if (ll_nonce) { fputs(", \"nonce\": ", stdout); json_string(ll_nonce); }
}

static void line_end(void) {
    fputs("}\n", stdout);
    fflush(stdout);
}

static void report(ll_case* c, const double* samples, int n, double handshake_us) {
    line_start(c->name);
    char seed[65] = "";
    if (c->keyed) ll_hex(c->key, 32, seed);
    if (c->failed) {
        fputs(", \"ok\": false, \"error\": ", stdout);
        json_string(c->error);
        printf(", \"failure\": \"%s\"", c->failure);
    } else {
        fputs(", \"ok\": true, \"samples_us\": [", stdout);
        /* a call shorter than the clock's resolution still took time: never print 0 */
        for (int i = 0; i < n; i++) printf("%s%.3f", i ? ", " : "", samples[i] > 0.001 ? samples[i] : 0.001);
        printf("], \"batch\": %d, \"handshake_us\": %.2f", c->batch, handshake_us);
        if (c->metrics[0]) printf(", %s", c->metrics);
    }
    if (seed[0]) printf(", \"inputs_seed\": \"%s\"", seed);
    line_end();
}

static double median(const double* x, int n) {
    double s[64];
    if (n <= 0) return 0.0;
    if (n > 64) n = 64;
    memcpy(s, x, (size_t)n * sizeof *s);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && s[j] < s[j - 1]; j--) { double t = s[j]; s[j] = s[j - 1]; s[j - 1] = t; }
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

/* ---------- one case ---------- */

/* One batch: inputs for every set, the timed run, then every check of every call. */
static int batch(ll_case* c, const ll_harness* H, int first_call, int nsets, double deadline_s, ll_timing* t) {
    c->call_base = first_call;
    for (int s = 0; s < nsets; s++) H->inputs(c, s, first_call + s);
    ll_arena_prepare(c, nsets);
    if (!ll_worker_run(c, (uint32_t)nsets, deadline_s, t)) return 0;
    uint8_t key[32];
    ll_os_random(key, sizeof key);  /* what to verify is drawn now, after the call returned */
    ll_chacha_init(&c->pick_rng, key, 0);
    if (!ll_arena_verify(c, nsets)) return 0;
    for (int s = 0; s < nsets; s++)
        if (!H->check(c, s, first_call + s)) {
            if (!c->failed) ll_fail(c, "wrong result on call %d", first_call + s);
            return 0;
        }
    return ll_arena_unchanged(c, nsets);
}

static void run_case(const ll_harness* H, const char* name) {
    ll_case* c = calloc(1, sizeof *c);
    c->name = name;
    c->batch = 1;
    c->fd = c->err_fd = -1;
    if (!H->setup(c, name)) {
        line_start(name);
        fputs(", \"ok\": false, \"error\": \"unknown case\"", stdout);
        line_end();
        free(c);
        return;
    }
    double samples[64], walls[64], handshake = 0.0;
    int reps = 0, warmup = H->warmup > 0 ? H->warmup : 1;
    if (c->failed || !ll_arena_create(c) || !ll_worker_start(c, worker_path)) goto done;

    /* the inputs key exists only once the worker is running, confined and stopped */
    if (ll_seed) ll_key_from_seed(ll_seed, c->key);
    else ll_os_random(c->key, sizeof c->key);
    c->keyed = 1;
    ll_chacha_init(&c->in_rng, c->key, 1);

    ll_timing t;
    double hs[7];  /* the handshake alone (no call), before any candidate code ran */
    for (int i = 0; i < 7; i++) {
        if (!ll_worker_run(c, 0, 5.0, &t)) goto done;
        hs[i] = t.cpu_us;
    }
    handshake = median(hs, 7);

    double slowest = 0.0, fastest = 1e300;
    for (int call = 1; call <= warmup; call++) {
        if (!batch(c, H, call, 1, ll_call_timeout_s, &t)) goto done;
        slowest = t.wall_us > slowest ? t.wall_us : slowest;
        fastest = t.cpu_us < fastest ? t.cpu_us : fastest;
    }
    int lo = H->min_reps > 0 ? H->min_reps : 3, hi = H->max_reps > 0 ? H->max_reps : 10;
    double budget = H->budget_us > 0 ? H->budget_us : 250000.0, per_sample = fastest * c->batch;
    hi = hi > 64 ? 64 : hi > ll_max_reps ? ll_max_reps : hi;
    lo = lo > hi ? hi : lo;
    reps = per_sample > 0 ? (int)(budget / per_sample) : hi;
    reps = reps < lo ? lo : reps > hi ? hi : reps;
    /* a timed call far slower than the warm-up ones is a hang, not noise */
    double deadline = 1.0 + 20.0 * slowest * c->batch / 1e6;
    deadline = deadline < ll_call_timeout_s ? deadline : ll_call_timeout_s;
    for (int i = 0; i < reps; i++) {
        if (!batch(c, H, warmup + 1 + i * c->batch, c->batch, deadline, &t)) goto done;
        samples[i] = t.cpu_us / c->batch;
        walls[i] = t.wall_us / c->batch;
    }
    if (H->metrics) H->metrics(c, median(samples, reps));
    /* the window's wall time per call: above the samples by what the worker waited for a CPU */
    ll_metric(c, "\"wall_us\": %.3f", median(walls, reps));
    if (handshake > 0.05 * median(samples, reps) * c->batch)
        fprintf(stderr, "looplab supervisor: case %s: the handshake (%.1f us) is over 5%% of a timed sample; "
                "raise its batch\n", name, handshake);
done:
    ll_worker_end(c);
    report(c, samples, reps, handshake);
    ll_arena_free(c);
    for (int i = 0; i < c->nallocs; i++) free(c->allocs[i]);
    free(c->allocs);
    free(c);
}

int main(int argc, char** argv) {
    prctl(PR_SET_DUMPABLE, 0);  /* first: no ptrace, no /proc/<pid>/mem of the supervisor */
    ll_worker_signals();
    if (strchr(argv[0], '/')) snprintf(worker_path, sizeof worker_path, "%s.worker", argv[0]);
    else {
        ssize_t n = readlink("/proc/self/exe", worker_path, sizeof worker_path - 8);
        snprintf(worker_path + (n > 0 ? n : 0), 8, ".worker");
    }
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--nonce") && i + 1 < argc) { ll_nonce = argv[++i]; continue; }
        if (!strcmp(argv[i], "--seed") && i + 1 < argc) { ll_seed = argv[++i]; continue; }
        if (!strcmp(argv[i], "--max-reps") && i + 1 < argc) {
            int n = atoi(argv[++i]);
            ll_max_reps = n > 0 ? n : 1;
            continue;
        }
        if (!strcmp(argv[i], "--call-timeout") && i + 1 < argc) {
            double s = atof(argv[++i]);
            ll_call_timeout_s = s > 0 ? s : ll_call_timeout_s;
            continue;
        }
        run_case(&LL_HARNESS, argv[i]);
    }
    return 0;
}

/* sv_internal.h — the supervisor's private state, shared by its parts (sv_*.c, compiled as one
 * translation unit through supervisor.c). Nothing here is ever mapped into the worker.
 */
#ifndef LL_SV_INTERNAL_H
#define LL_SV_INTERNAL_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "looplab.h"
#include "ll_protocol.h"

#define LL_CANARY 256       /* at least this many random bytes between any two buffers */
#define LL_MAX_BATCH 4096   /* calls per timed sample */

typedef struct {
    uint32_t key[8];
    uint64_t nonce, ctr;
    uint32_t block[16 * 8];  /* 8 blocks at a time */
    int used;                /* words of block already handed out (all = empty) */
} ll_chacha;

typedef struct {
    char name[32];
    ll_type type;
    size_t count, esize, bytes;
    int role, misalign, absent;
    size_t off;           /* set 0's data in the arena */
    unsigned char* priv;  /* inputs: the supervisor's copy, one per set (the truth the check reads) */
    unsigned char* snap;  /* outputs: what the target left, copied right after the call */
} ll_bufspec;

typedef struct {
    size_t off, len;     /* canary bytes in the arena */
    int before, after;   /* slot of the buffer ending at off / starting at off + len; -1: none */
    int set_before, set_after;
} ll_gap;

struct ll_case {
    const char* name;
    ll_bufspec buf[LL_MAX_BUFS];
    int nbuf;
    long ints[LL_MAX_INTS];
    int nint;
    int batch;
    const void* user;
    void** allocs;
    int nallocs;
    /* the arena: header page, then sets of buffers with canaries in every gap */
    int fd;
    unsigned char* base;
    size_t size, stride;
    ll_gap* gaps;
    int ngaps;
    unsigned char* canary;  /* the expected gap bytes, gap after gap */
    /* randomness */
    uint8_t key[32];
    int keyed;
    ll_chacha in_rng, pick_rng;
    /* the worker */
    pid_t pid;
    clockid_t cpu;
    double ran_us;  /* wall time the worker could have run: fork to its first stop, then every window */
    int err_fd;           /* read end of the worker's stderr, relayed to ours with a "target: " prefix */
    size_t err_relayed;   /* bytes relayed so far (capped per case) */
    int err_midline;
    int call_base;  /* call number of set 0 in the batch being run or checked */
    /* the verdict */
    int failed;
    const char* failure;  /* "invalid", "crash" or "timeout" */
    char error[600];
    char metrics[600];
};

/* options, from the command line */
extern const char* ll_nonce;
extern const char* ll_seed;
extern int ll_max_reps;
extern double ll_call_timeout_s;

/* sv_rng.c */
void ll_chacha_init(ll_chacha* r, const uint8_t key[32], uint64_t nonce);
uint32_t ll_chacha_u32(ll_chacha* r);
void ll_os_random(void* buf, size_t n);
void ll_key_from_seed(const char* seed, uint8_t key[32]);
void ll_hex(const uint8_t* p, size_t n, char* out);

/* sv_arena.c */
int ll_arena_create(ll_case* c);
void ll_arena_prepare(ll_case* c, int nsets);
int ll_arena_verify(ll_case* c, int nsets);
int ll_arena_unchanged(ll_case* c, int nsets);
void ll_arena_free(ll_case* c);

/* sv_worker.c */
int ll_worker_start(ll_case* c, const char* path);
typedef struct {
    double cpu_us;   /* the worker's kernel-accounted CPU time in the window: the sample */
    double wall_us;  /* the window itself, SIGCONT to stop: bounds the CPU time, and the deadline */
} ll_timing;
int ll_worker_run(ll_case* c, uint32_t ncalls, double deadline_s, ll_timing* t);
void ll_worker_end(ll_case* c);
void ll_worker_relay(ll_case* c);
void ll_worker_signals(void);

/* supervisor.c */
int ll_fail_as(ll_case* c, const char* failure, const char* fmt, ...) __attribute__((format(printf, 3, 4)));

#endif

/* ll_protocol.h — what the supervisor and the worker share: the arena's header page.
 *
 * Internal to the library (experiments include looplab.h only). The supervisor writes the header
 * while the worker is stopped and never reads back anything but `progress` and `bad_syscall`, which
 * only word a failure message: the worker is untrusted once the target has run.
 */
#ifndef LL_PROTOCOL_H
#define LL_PROTOCOL_H

#include <stdint.h>

#define LL_MAGIC 0x6c6f6f706c616221ULL  /* "looplab!" */
#define LL_ARENA_FD 3                   /* the worker finds the arena here, and closes it once mapped */
#define LL_HEADER_BYTES 4096            /* the header page; buffers and canaries follow it */
#define LL_EXIT_SYSCALL 159             /* worker exit code: a forbidden system call (number in bad_syscall) */
#define LL_EXIT_SETUP 158               /* worker exit code: it could not map the arena or confine itself */
#define LL_MAX_BUFS_P 8
#define LL_MAX_INTS_P 8

typedef struct {
    uint64_t magic;
    uint32_t ncalls;                   /* calls in this batch: call k uses input set k (0 = handshake only) */
    uint32_t nbuf, nint;
    uint64_t offset[LL_MAX_BUFS_P];    /* byte offset of each buffer in set 0; 0 = pass NULL */
    uint64_t set_stride;               /* set k's buffers sit k * set_stride bytes after set 0's */
    int64_t ints[LL_MAX_INTS_P];
    /* written by the worker (untrusted; words messages only) */
    volatile uint32_t progress;        /* 1-based index of the call in the batch that is running */
    volatile int32_t bad_syscall;      /* the system call the seccomp filter refused */
    char setup_error[256];             /* why the worker could not start (before any candidate code ran) */
} ll_header;

#endif

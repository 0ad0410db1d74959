/* worker.c — the process that holds the candidate. Linked with the candidate; trusted only until
 * the first candidate call, so it holds nothing worth stealing: no nonce, no case name, no seed,
 * no reference, no result channel (stdout is /dev/null; the supervisor prints the results).
 *
 * Start-up (before any candidate code can run; candidates may not carry constructors):
 * map the arena from fd 3 and close it, prepare stdio and malloc so they need no system call later,
 * install a SIGSYS handler, then a seccomp allowlist. Then serve: stop (that is "ready" and "done":
 * the supervisor times from its SIGCONT to this stop), run the batch the header describes, repeat.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef LOOPLAB_WORKER
#define LOOPLAB_WORKER 1
#endif
#include "looplab.h"
#include "ll_protocol.h"

static ll_header* hdr;
static unsigned char* arena;

/* A refused system call: note which one for the supervisor's message, and end the process. */
static void on_sigsys(int sig, siginfo_t* si, void* ctx) {
    (void)sig; (void)ctx;
    hdr->bad_syscall = si->si_syscall;
    syscall(SYS_exit_group, LL_EXIT_SYSCALL);
}

static void setup_failed(const char* what) {
    if (hdr) snprintf(hdr->setup_error, sizeof hdr->setup_error, "%s: %s", what, strerror(errno));
    _exit(LL_EXIT_SETUP);
}

/* The allowlist: memory management without PROT_EXEC, stderr, the clocks, exit, stopping and aborting itself. */
static int confine(pid_t self) {
#ifdef LOOPLAB_UNSAFE_NO_SECCOMP  /* tests of the supervisor's own checks only; never in an experiment */
    (void)self;
    return 0;
#else
    scmp_filter_ctx f = seccomp_init(SCMP_ACT_TRAP);
    if (!f) return -1;
    int rc = 0;
#define ALLOW(name, ...) rc |= seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(name), __VA_ARGS__)
    ALLOW(write, 1, SCMP_A0(SCMP_CMP_EQ, 2));   /* stderr is the run's log; stdout is not ours */
    ALLOW(writev, 1, SCMP_A0(SCMP_CMP_EQ, 2));
    ALLOW(exit, 0);
    ALLOW(exit_group, 0);
    ALLOW(brk, 0);
    ALLOW(munmap, 0);
    ALLOW(mremap, 0);
    /* anonymous memory only, never executable: no new code, no second view of a file */
    ALLOW(mmap, 2, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0), SCMP_A3(SCMP_CMP_MASKED_EQ, MAP_ANONYMOUS, MAP_ANONYMOUS));
    ALLOW(mprotect, 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    /* hints only: MADV_REMOVE and friends would punch holes into the shared arena */
    static const int advice[] = {MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL, MADV_WILLNEED, MADV_DONTNEED,
                                 MADV_FREE, MADV_HUGEPAGE, MADV_NOHUGEPAGE};
    for (size_t i = 0; i < sizeof advice / sizeof advice[0]; i++) ALLOW(madvise, 1, SCMP_A2(SCMP_CMP_EQ, advice[i]));
    ALLOW(clock_gettime, 0);
    ALLOW(clock_getres, 0);
    ALLOW(gettimeofday, 0);
    ALLOW(time, 0);
    ALLOW(rt_sigreturn, 0);
    ALLOW(restart_syscall, 0);
    ALLOW(kill, 2, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)self), SCMP_A1(SCMP_CMP_EQ, SIGSTOP));  /* "done" */
    /* abort() and a failed assert(): glibc unblocks SIGABRT and sends it to its own thread, so the
     * supervisor sees an abort, not a forbidden call; the signal mask is the thread's own business */
    ALLOW(rt_sigprocmask, 0);
    ALLOW(getpid, 0);
    ALLOW(gettid, 0);
    ALLOW(tgkill, 2, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)self), SCMP_A2(SCMP_CMP_EQ, SIGABRT));
#undef ALLOW
    /* 32-bit (int 0x80) and x32 system calls have other numbers: end the process outright */
    rc |= seccomp_attr_set(f, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    rc |= seccomp_attr_set(f, SCMP_FLTATR_CTL_NNP, 1);
    if (rc == 0) rc = seccomp_load(f);
    seccomp_release(f);
    return rc;
#endif
}

static char out_buffer[BUFSIZ];

static int by_byte(const void* a, const void* b) { return *(const unsigned char*)a - *(const unsigned char*)b; }

int main(void) {
    struct stat st;
    if (fstat(LL_ARENA_FD, &st) != 0 || st.st_size < LL_HEADER_BYTES) _exit(LL_EXIT_SETUP);
    /* MAP_POPULATE: page faults now, not inside the first timed call */
    arena = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, LL_ARENA_FD, 0);
    if (arena == MAP_FAILED) _exit(LL_EXIT_SETUP);
    hdr = (ll_header*)arena;
    close(LL_ARENA_FD);  /* no fd left to resize, remap or seal the arena with */
    if (hdr->magic != LL_MAGIC) { errno = EINVAL; setup_failed("arena"); }

    /* The kernel's OOM killer should pick the worker, never the supervisor (best effort). */
    int oom = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (oom >= 0) { (void)!write(oom, "1000", 4); close(oom); }
    /* libc's one-time set-up that needs a system call happens now, while that is allowed: stdio's
     * buffer (fstat), malloc's (getrandom), qsort's memory size (sysinfo, for arrays over 1 KB) */
    setvbuf(stdout, out_buffer, _IOFBF, sizeof out_buffer);
    free(malloc(1));
    static unsigned char sample[2048];
    qsort(sample, sizeof sample, 1, by_byte);

    static unsigned char altstack[1 << 16];
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigfillset(&sa.sa_mask);
    if (sigaltstack(&ss, NULL) != 0 || sigaction(SIGSYS, &sa, NULL) != 0) setup_failed("sigaction");

    pid_t self = getpid();
    if (confine(self) != 0) { errno = ENOSYS; setup_failed("seccomp filter"); }

    for (;;) {
        kill(self, SIGSTOP);  /* ready / done: the supervisor resumes us with a new batch */
        ll_header h = *hdr;   /* a private copy: the target may scribble on the shared one */
        for (uint32_t k = 0; k < h.ncalls; k++) {
            ll_args a;
            memset(&a, 0, sizeof a);
            for (uint32_t i = 0; i < h.nint && i < LL_MAX_INTS; i++) a.n[i] = (long)h.ints[i];
            for (uint32_t b = 0; b < h.nbuf && b < LL_MAX_BUFS; b++)
                a.p[b] = h.offset[b] ? arena + h.offset[b] + (size_t)k * h.set_stride : NULL;
            hdr->progress = k + 1;
            ll_target(&a);
        }
    }
}

/* sv_worker.c — starting, timing and ending the worker process.
 *
 * A call is timed by the supervisor alone: t0, SIGCONT, wait until the worker is *stopped* again
 * (it stops itself after the batch), t1. Outside that window the worker is frozen, so nothing it
 * does after "done" escapes the clock, and nothing it reads before t0 can be new inputs: they are
 * written while it is stopped. The sample is the worker's kernel-accounted CPU time in the window:
 * the worker can neither sleep nor block (its filter allows no such call), so that is its wall
 * time minus the time it waited for a CPU, which on a busy machine is most of the noise (a wake-up
 * after each handshake is a scheduling point the in-process harness never had). One thread cannot
 * use more CPU than the wall time it had: more is hidden parallelism. That is checked on the totals
 * since fork, not per window: a worker that has just stopped can still be switching out, and the
 * kernel may charge that tail (the start-up's, ~1.5 ms) to the next window, which then seems to hold
 * more CPU than wall time. Totals only ever under-count, so they never accuse an honest worker.
 */
#include <seccomp.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>

#include "sv_internal.h"

static volatile sig_atomic_t alarm_fired;
static volatile pid_t alarm_pid;

/* The per-call deadline: kill the worker from the handler, so a wait that starts late still ends. */
static void on_alarm(int sig) {
    (void)sig;
    alarm_fired = 1;
    if (alarm_pid > 0) kill(alarm_pid, SIGKILL);
}

void ll_worker_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;  /* no SA_RESTART: waitid returns EINTR */
    sigaction(SIGALRM, &sa, NULL);
    signal(SIGCHLD, SIG_DFL);  /* SIG_IGN (inherited) would reap the worker behind our back */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

static void arm(double seconds) {
    struct itimerval it = {{0, 0}, {(time_t)seconds, (suseconds_t)((seconds - (time_t)seconds) * 1e6) + 1}};
    setitimer(ITIMER_REAL, &it, NULL);
}

static void disarm(void) {
    struct itimerval it = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &it, NULL);
}

static double us(const struct timespec* t) { return (double)t->tv_sec * 1e6 + (double)t->tv_nsec / 1e3; }

/* Wait for the worker to stop or end, within the armed deadline. 1 = stopped. */
static int wait_stop(ll_case* c, siginfo_t* si) {
    for (;;) {
        memset(si, 0, sizeof *si);
        if (waitid(P_PID, (id_t)c->pid, si, WEXITED | WSTOPPED) == 0) break;
        if (errno != EINTR) { si->si_code = CLD_KILLED; si->si_status = SIGKILL; break; }
    }
    if (si->si_code == CLD_STOPPED) return 1;
    c->pid = 0;  /* reaped */
    return 0;
}

static const char* signal_name(int sig) {
    static const struct { int sig; const char* name; } names[] = {
        {SIGSEGV, "SIGSEGV"}, {SIGBUS, "SIGBUS"}, {SIGILL, "SIGILL"}, {SIGFPE, "SIGFPE"}, {SIGABRT, "SIGABRT"},
        {SIGKILL, "SIGKILL"}, {SIGTERM, "SIGTERM"}, {SIGTRAP, "SIGTRAP"}, {SIGXFSZ, "SIGXFSZ"}, {SIGPIPE, "SIGPIPE"}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].sig == sig) return names[i].name;
    return "a signal";
}

/* Close every descriptor from `fd` up (close_range where the kernel has it). */
static void close_from(int fd) {
#ifdef SYS_close_range
    if (syscall(SYS_close_range, (unsigned)fd, ~0U, 0) == 0) return;
#endif
    for (int i = fd; i < 65536; i++) close(i);
}

/* Why the worker ended, as the model should read it. */
static int ended(ll_case* c, const siginfo_t* si, int during, int ncalls, double deadline_s) {
    const ll_header* h = (const ll_header*)c->base;
    uint32_t k = h->progress;  /* untrusted: only words the message */
    int call = c->call_base + (k >= 1 && (int)k <= ncalls ? (int)k - 1 : 0);
    char when[64];
    if (!during) snprintf(when, sizeof when, "while starting");
    else snprintf(when, sizeof when, "during call %d", call);
    if (alarm_fired)
        return ll_fail_as(c, "timeout", "timed out: call %d did not return within %.3g s", call, deadline_s);
    if (si->si_code == CLD_EXITED && si->si_status == LL_EXIT_SYSCALL) {
        char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, h->bad_syscall);
        ll_fail_as(c, "invalid", "forbidden system call %s %s: threads, processes, files, sockets and signals "
                   "are not available to the target", name ? name : "(unknown)", when);
        free(name);
        return 0;
    }
    if (si->si_code == CLD_EXITED && si->si_status == LL_EXIT_SETUP && !during)
        return ll_fail_as(c, "crash", "the worker could not start: %.200s", h->setup_error[0] ? h->setup_error : "set-up failed");
    if (si->si_code == CLD_EXITED && !during)
        return ll_fail_as(c, "crash", "the worker could not start (exit status %d; is the .worker binary built?)", si->si_status);
    if (si->si_code == CLD_EXITED)
        return ll_fail_as(c, "crash", "the target exited (status %d) %s", si->si_status, when);
    if (si->si_status == SIGSYS)  /* the filter's kill action: a 32-bit or x32 system call */
        return ll_fail_as(c, "invalid", "forbidden system call (another ABI) %s: threads, processes, files, sockets "
                          "and signals are not available to the target", when);
    if (si->si_status == SIGXCPU)
        return ll_fail_as(c, "timeout", "cpu time limit exceeded %s", when);
    if (si->si_status == SIGABRT)
        return ll_fail_as(c, "crash", "aborted (abort() or a failed assert; its message is in the log) %s", when);
    return ll_fail_as(c, "crash", "killed by %s %s", signal_name(si->si_status), when);
}

/* fork + exec a fresh worker on the arena, and wait until it is confined and stopped. */
int ll_worker_start(ll_case* c, const char* path) {
    /* Burn a random number of pids first: the worker's pid must not tell which case of the run it is. */
    unsigned char burn;
    ll_os_random(&burn, 1);
    for (int i = 0; i < (burn & 31); i++) {
        pid_t p = vfork();
        if (p == 0) _exit(0);
        if (p > 0) waitpid(p, NULL, 0);
    }
    /* The worker's stderr is a pipe we relay line by line behind "target: ": nothing it writes can pass
     * for the sandbox's or the supervisor's own words. Non-blocking, so a flood is dropped, never a hang. */
    int err[2] = {-1, -1};
    int null_r = open("/dev/null", O_RDONLY | O_CLOEXEC), null_w = open("/dev/null", O_WRONLY | O_CLOEXEC);
    pid_t parent = getpid(), pid = -1;
    struct timespec forked, up;
    clock_gettime(CLOCK_MONOTONIC, &forked);
    if (null_r >= 0 && null_w >= 0 && pipe2(err, O_CLOEXEC | O_NONBLOCK) == 0) pid = fork();
    if (pid < 0) {
        int why = errno;
        close(null_r), close(null_w), close(err[0]), close(err[1]);
        return ll_fail_as(c, "crash", "cannot start the worker: %s", strerror(why));
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);  /* the worker never outlives its supervisor */
        if (getppid() != parent) _exit(127);
        int a = fcntl(c->fd, F_DUPFD, 10), r = fcntl(null_r, F_DUPFD, 10), w = fcntl(null_w, F_DUPFD, 10);
        int e = fcntl(err[1], F_DUPFD, 10);
        if (a < 0 || r < 0 || w < 0 || e < 0 || dup2(r, 0) < 0 || dup2(w, 1) < 0 || dup2(e, 2) < 0 ||
            dup2(a, LL_ARENA_FD) < 0)
            _exit(127);
        close_from(LL_ARENA_FD + 1);  /* every other descriptor goes, the result channel first */
        /* No process or thread of its own, ever: code that runs before the worker's main (a constructor
         * linked in by a workspace or a crate the screen never saw) cannot start a helper to compute out of
         * the timed process's sight. (The sandbox's throw-away uid is subject to it; root is not.) */
        struct rlimit no_procs = {0, 0};
        if (setrlimit(RLIMIT_NPROC, &no_procs) != 0) _exit(127);
        char* argv[] = {"looplab-worker", NULL};
        char* envp[] = {NULL};  /* no environment: no nonce, no seed, no case name, no secrets */
        execve(path, argv, envp);
        _exit(127);
    }
    close(null_r);
    close(null_w);
    close(err[1]);
    fcntl(err[0], F_SETPIPE_SZ, 1 << 20);  /* room for a call's worth of messages */
    c->err_fd = err[0];
    c->pid = pid;
    alarm_fired = 0;
    alarm_pid = pid;
    arm(10.0);
    siginfo_t si;
    int ok = wait_stop(c, &si);
    disarm();
    if (!ok) return ended(c, &si, 0, 0, 10.0);
    clock_gettime(CLOCK_MONOTONIC, &up);
    c->ran_us = us(&up) - us(&forked);
    if (clock_getcpuclockid(pid, &c->cpu) != 0) return ll_fail_as(c, "crash", "no CPU clock for the worker");
    return 1;
}

/* One batch of `ncalls` calls (0: the handshake alone), timed. 1 = the worker stopped normally. */
int ll_worker_run(ll_case* c, uint32_t ncalls, double deadline_s, ll_timing* t) {
    ll_header* h = (ll_header*)c->base;
    h->ncalls = ncalls;
    h->nbuf = (uint32_t)c->nbuf;
    h->nint = (uint32_t)c->nint;
    for (int b = 0; b < LL_MAX_BUFS; b++) h->offset[b] = b < c->nbuf && !c->buf[b].absent ? c->buf[b].off : 0;
    h->set_stride = c->stride;
    for (int i = 0; i < LL_MAX_INTS; i++) h->ints[i] = i < c->nint ? c->ints[i] : 0;
    h->progress = 0;
    h->bad_syscall = -1;

    struct timespec c0, c1, t0, t1;
    siginfo_t si;
    alarm_fired = 0;
    alarm_pid = c->pid;
    arm(deadline_s);
    clock_gettime(c->cpu, &c0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    kill(c->pid, SIGCONT);
    int stopped = wait_stop(c, &si);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    disarm();
    ll_worker_relay(c);
    if (!stopped || alarm_fired) {
        if (stopped) ll_worker_end(c);  /* the deadline passed just as it stopped: still too late */
        return ended(c, &si, 1, (int)ncalls, deadline_s);
    }
    clock_gettime(c->cpu, &c1);
    double wall = us(&t1) - us(&t0), cpu = us(&c1) - us(&c0);
    t->cpu_us = cpu;
    t->wall_us = wall;
    c->ran_us += wall;
    /* one thread cannot use more CPU than wall time; seccomp forbids threads, this checks it held */
    double used = us(&c1);
    if (used > c->ran_us * 1.02 + 50.0)
        return ll_fail_as(c, "invalid", "hidden parallelism: the target used %.0f us of CPU in %.0f us of wall time "
                          "by call %d (single thread only)", used, c->ran_us, c->call_base);
    return 1;
}

void ll_worker_end(ll_case* c) {
    if (c->pid > 0) {
        kill(c->pid, SIGKILL);
        waitpid(c->pid, NULL, 0);
        c->pid = 0;
    }
    ll_worker_relay(c);
    if (c->err_midline) fputc('\n', stderr), c->err_midline = 0;
    if (c->err_fd >= 0) close(c->err_fd);
    c->err_fd = -1;
}

/* What the worker wrote to stderr since the last batch, to our stderr, each line behind "target: ". */
void ll_worker_relay(ll_case* c) {
    enum { CAP = 64 * 1024 };  /* per case: the run's log is capped anyway */
    char buf[4096];
    ssize_t n;
    while (c->err_fd >= 0 && (n = read(c->err_fd, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n && c->err_relayed < CAP; i++, c->err_relayed++) {
            if (!c->err_midline) fputs("target: ", stderr);
            fputc(buf[i], stderr);
            c->err_midline = buf[i] != '\n';
            if (c->err_relayed + 1 == CAP) fputs("\n(the target's stderr is cut here)\n", stderr);
        }
    }
    fflush(stderr);
}

"""The C harness library itself (looplab/harness/c): what the worker can see, where inputs come from,
how a failure is worded, and the checks behind the seccomp filter. Real gcc, the supervisor run
directly (tests/test_hostile.py runs cheats through the sandbox and the judge)."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest
from experiment_helpers import EXPERIMENTS, ROOT

from looplab import harness

LINEAR = EXPERIMENTS / "linear"
MATMUL = ROOT / "tests" / "fixtures" / "matmul"
INC = harness.placeholders()["looplab_include"]
MATMUL_BODY = """
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            float acc = 0.0f;
            for (int k = 0; k < n; k++) acc += a[i * n + k] * b[k * n + j];
            c[i * n + j] = acc;
        }
"""


def build(tmp: Path, candidate: str, *, experiment: Path = MATMUL, worker_flags: str = "") -> Path:
    """The experiment's harness, built the way its experiment.toml does, with `candidate` in the worker."""
    (tmp / "cand.c").write_text(candidate)
    q = shlex.quote
    harness_c, binary = q(str(experiment / "harness" / "bench.c")), q(str(tmp / "bench"))
    cmd = (f"gcc -O2 -march=native -std=gnu11 -I{q(INC)} -o {binary} {harness_c} {q(INC)}/supervisor.c -lm -lseccomp"
           f" && gcc -O2 -march=native -std=gnu11 -I{q(INC)} -DLOOPLAB_WORKER {worker_flags} -o {binary}.worker"
           f" {harness_c} {q(INC)}/worker.c {q(str(tmp / 'cand.c'))} -lm -lseccomp")
    proc = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return tmp / "bench"


def run(binary: Path, *args: str) -> tuple[list[dict], str]:
    proc = subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()], proc.stderr


def matmul(body: str, prelude: str = "") -> str:
    return prelude + "void matmul(float* c, const float* a, const float* b, int n) {\n" + body + "}\n"


# Everything a target can find without a system call: its argv, its environment, the path it was
# started from, and the integers of its call; printed to stderr (which the supervisor relays).
SNOOP = matmul("""
    static int once;
    if (!once) {
        once = 1;
        for (char** p = environ - 2; (unsigned long)*p > 4096; p--) fprintf(stderr, "argv: %s\\n", *p);
        for (char** p = environ; *p; p++) fprintf(stderr, "env: %s\\n", *p);
        fprintf(stderr, "execfn: %s\\n", (const char*)getauxval(AT_EXECFN));
        fprintf(stderr, "n: %d\\n", n);
    }
""" + MATMUL_BODY, "#include <stdio.h>\n#include <sys/auxv.h>\nextern char** environ;\n")


def test_the_worker_sees_no_case_name_no_nonce_no_seed(tmp_path: Path) -> None:
    binary = build(tmp_path, SNOOP)
    records, log = run(binary, "--nonce", "NONCE-abc123", "--seed", "777", "--max-reps", "1", "n96", "n61")
    assert [r["ok"] for r in records] == [True, True], records
    seen = [line for line in log.splitlines() if line.startswith("target: ")]
    assert "target: argv: looplab-worker" in seen and "target: n: 61" in seen
    assert not any(line.startswith("target: env:") for line in seen)
    for secret in ("NONCE-abc123", "777", "n96", "n61", "--"):
        assert not any(secret in line for line in seen if not line.startswith(("target: n:", "target: execfn:"))), seen


def test_the_worker_program_holds_no_case_table(tmp_path: Path) -> None:
    # The case names (search and holdout) are compiled into the supervisor only.
    binary = build(tmp_path, (LINEAR / "naive.c").read_text(), experiment=LINEAR)
    worker = Path(str(binary) + ".worker").read_bytes()
    assert b"gpt2_attn_proj_bt64" in binary.read_bytes() and b"odd_7x333x129_nobias" in binary.read_bytes()
    assert b"gpt2_attn_proj_bt64" not in worker and b"odd_7x333x129_nobias" not in worker


# The inputs the target sees, as one checksum per call on stderr.
CHECKSUM = matmul("""
    unsigned long h = 1469598103934665603UL;
    for (int i = 0; i < n * n; i++) { unsigned u; memcpy(&u, &a[i], 4); h = (h ^ u) * 1099511628211UL; }
    fprintf(stderr, "inputs %016lx\\n", h);
""" + MATMUL_BODY, "#include <stdio.h>\n#include <string.h>\n")


def _inputs(binary: Path, *args: str) -> tuple[list[str], str]:
    records, log = run(binary, "--max-reps", "2", *args, "n128")
    assert records[0]["ok"], records
    return [line for line in log.splitlines() if line.startswith("target: inputs")], records[0]["inputs_seed"]


def test_inputs_are_fresh_every_run_and_an_inputs_seed_reproduces_them(tmp_path: Path) -> None:
    binary = build(tmp_path, CHECKSUM)
    first, key = _inputs(binary)
    second, other = _inputs(binary)
    assert len(first) == 3 and len(set(first)) == 3  # warm-up and two timed calls: all different
    assert key != other and not set(first) & set(second) and len(key) == 64
    again, same = _inputs(binary, "--seed", key)
    assert same == key and again == first  # the printed key gives the same inputs back


def test_honest_use_of_libc_is_not_refused(tmp_path: Path) -> None:
    # The filter must not catch what a fast kernel may legitimately do: allocate (small and large),
    # sort, copy, call libm, write a note to stderr.
    binary = build(tmp_path, matmul("""
    float* t = malloc(sizeof(float) * n * n);
    memcpy(t, a, sizeof(float) * n * n);
    qsort(t, (size_t)n * n, sizeof(float), by_value);  /* over 1 KB: glibc asks the kernel its memory size */
    void* big = realloc(calloc(1 << 22, 1), 1 << 23);
    free(big);
    volatile double e = exp(t[0]) + log(fabs(t[1]) + 1.0) + sqrt(fabs(t[2]));
    (void)e;
    free(t);
    fprintf(stderr, "note %d\\n", n);
""" + MATMUL_BODY, """#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static int by_value(const void* x, const void* y) {
    float a = *(const float*)x, b = *(const float*)y;
    return (a > b) - (a < b);
}
"""))
    records, log = run(binary, "--max-reps", "2", "n96", "n160")
    assert all(r["ok"] for r in records), records
    assert "target: note 96" in log


def test_a_failed_assert_is_an_abort_with_its_message_not_a_forbidden_call(tmp_path: Path) -> None:
    binary = build(tmp_path, matmul("    static int calls;\n    assert(++calls < 2 && \"second call\");\n"
                                    + MATMUL_BODY, "#include <assert.h>\n"))
    records, log = run(binary, "--max-reps", "2", "n96")
    r = records[0]
    assert r["ok"] is False and r["failure"] == "crash", r
    assert "aborted (abort() or a failed assert" in r["error"] and "call 2" in r["error"], r
    assert "forbidden" not in r["error"] and "Assertion" in log and "second call" in log


def test_the_abort_allowance_kills_only_the_worker_itself(tmp_path: Path) -> None:
    # tgkill is allowed for SIGABRT to its own process only: any other signal or target is refused.
    binary = build(tmp_path, matmul("    syscall(SYS_tgkill, getpid(), gettid(), SIGTERM);\n" + MATMUL_BODY,
                                    "#define _GNU_SOURCE\n#include <signal.h>\n#include <sys/syscall.h>\n"
                                    "#include <unistd.h>\n"))
    r = run(binary, "n96")[0][0]
    assert r["ok"] is False and "forbidden system call tgkill" in r["error"], r
    binary = build(tmp_path, matmul("    syscall(SYS_tgkill, 1, 1, SIGABRT);\n" + MATMUL_BODY,
                                    "#define _GNU_SOURCE\n#include <signal.h>\n#include <sys/syscall.h>\n"
                                    "#include <unistd.h>\n"))
    r = run(binary, "n96")[0][0]
    assert r["ok"] is False and "forbidden system call tgkill" in r["error"], r


def test_code_before_the_workers_main_can_start_no_helper_process_or_thread(tmp_path: Path) -> None:
    # A constructor runs before the worker confines itself; the screen refuses one in a single C file, but a
    # workspace of files or a crate is linked as built. Started as the sandbox starts it (a throw-away uid),
    # such code still cannot fork a helper that would compute out of the timed process's sight.
    import asyncio

    from looplab.config import LimitsConfig
    from looplab.sandbox.command import run_sandboxed

    (tmp_path / "bin").mkdir()
    binary = build(tmp_path / "bin", matmul(MATMUL_BODY, """#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
static void* idle(void* x) { return x; }
__attribute__((constructor)) static void early(void) {
    pid_t p = fork();
    if (p == 0) _exit(0);
    fprintf(stderr, "fork: %s\\n", p < 0 ? strerror(errno) : "started");
    pthread_t t;
    int rc = pthread_create(&t, NULL, idle, NULL);
    fprintf(stderr, "thread: %s\\n", rc ? strerror(rc) : "started");
}
"""))
    res = asyncio.run(run_sandboxed([str(binary), "--max-reps", "2", "n96"], workdir=tmp_path / "work",
                                    readonly=[tmp_path / "bin"], timeout_s=60, limits=LimitsConfig()))
    assert "fork: Resource temporarily unavailable" in res.stderr, res.stderr
    assert "thread: Resource temporarily unavailable" in res.stderr, res.stderr
    records = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert records and all(r["ok"] for r in records), res.stdout  # the honest kernel beside it still runs


def test_a_hang_is_a_timeout_naming_the_call(tmp_path: Path) -> None:
    binary = build(tmp_path, matmul("    static int calls;\n    if (++calls == 3) for (volatile int s = 1; s;) {}\n"
                                    + MATMUL_BODY))
    records, _ = run(binary, "--call-timeout", "1", "n128")
    r = records[0]
    assert r["ok"] is False and r["failure"] == "timeout" and "call 3 did not return" in r["error"], r


def test_every_line_carries_the_batch_and_the_handshake(tmp_path: Path) -> None:
    binary = build(tmp_path, matmul(MATMUL_BODY))
    records, _ = run(binary, "--max-reps", "2", "n61", "n160", "bogus")
    small, big, bogus = records
    assert small["batch"] > big["batch"] == 1 and len(small["samples_us"]) == 2
    assert 0 < small["handshake_us"] < 10_000 and 0 < big["handshake_us"] < 10_000
    assert bogus == {"case": "bogus", "ok": False, "error": "unknown case"}


def test_without_its_worker_each_case_fails_with_a_reason(tmp_path: Path) -> None:
    binary = build(tmp_path, matmul(MATMUL_BODY))
    Path(str(binary) + ".worker").unlink()
    records, _ = run(binary, "n96", "n61")
    assert [r["failure"] for r in records] == ["crash", "crash"]
    assert "the worker could not start" in records[0]["error"]


def test_a_second_writer_is_caught_even_without_the_filter(tmp_path: Path) -> None:
    # Defence in depth, with the seccomp filter compiled out (never so in an experiment): a helper
    # process sharing the arena waits until the worker is stopped (being checked), then edits an input.
    helper = matmul("""
    static int started;
    if (!started) {
        started = 1;
        pid_t parent = getpid();
        if (fork() == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            for (;;) {
                if (state_of(parent) == 'T') {
                    usleep(300);
                    ((volatile float*)b)[0] += 1.0f;
                    while (state_of(parent) == 'T') usleep(20);
                }
                usleep(20);
            }
        }
    }
""" + MATMUL_BODY, """#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>
static char state_of(pid_t p) {
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)p);
    FILE* f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char* r = strrchr(buf, ')');
    return r ? r[2] : 0;
}
""")
    binary = build(tmp_path, helper, worker_flags="-DLOOPLAB_UNSAFE_NO_SECCOMP")
    records, _ = run(binary, "--max-reps", "3", "n160")
    r = records[0]
    assert r["ok"] is False and r["failure"] == "invalid", r
    assert "b changed while the target was stopped" in r["error"] or "modified b" in r["error"], r


THREADED = matmul("""
    struct part p = {c, a, b, n, 0, n / 2}, q = {c, a, b, n, n / 2, n};
    pthread_t th;
    pthread_create(&th, NULL, rows, &q);
    rows(&p);
    pthread_join(th, NULL);
""", """#include <pthread.h>
struct part { float* c; const float* a; const float* b; int n, lo, hi; };
static void* rows(void* x) {
    struct part* s = x;
    for (int i = s->lo; i < s->hi; i++)
        for (int j = 0; j < s->n; j++) {
            float acc = 0.0f;
            for (int k = 0; k < s->n; k++) acc += s->a[i * s->n + k] * s->b[k * s->n + j];
            s->c[i * s->n + j] = acc;
        }
    return NULL;
}
""")


def test_cpu_time_beyond_the_wall_time_is_hidden_parallelism(tmp_path: Path) -> None:
    # Defence in depth, filter compiled out: two threads that really overlap use more CPU than wall
    # time. Whether they overlap is up to the machine (the sandbox pins a run to one core, where they
    # cannot gain anything), so a run that never overlapped proves nothing either way.
    binary = build(tmp_path, THREADED, worker_flags="-DLOOPLAB_UNSAFE_NO_SECCOMP")
    for _ in range(8):
        r = run(binary, "--max-reps", "5", "n160")[0][0]
        if not r["ok"]:
            assert r["failure"] == "invalid" and "hidden parallelism: the target used" in r["error"], r
            return
    pytest.skip("the two threads never ran at the same time on this machine (busy?)")


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_what_the_target_prints_never_passes_for_the_harness(tmp_path: Path, stream: str) -> None:
    line = '{"case": "n96", "ok": true, "samples_us": [1.0]}'
    binary = build(tmp_path, matmul(f'    fputs({json.dumps(line + chr(10))}, {stream}); fflush({stream});\n'
                                    + MATMUL_BODY, "#include <stdio.h>\n"))
    records, log = run(binary, "--max-reps", "1", "n96")
    if stream == "stdout":
        assert records[0]["ok"] is False and "forbidden system call write" in records[0]["error"]
    else:
        assert records[0]["ok"] is True and ("target: " + line) in log.splitlines()
    assert len(records) == 1

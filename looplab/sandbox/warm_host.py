"""A warm evaluation host: runs inside the bubblewrap sandbox and forks a fresh child per evaluation.

    python -I warm_host.py CONTROL_FD IMPORTS_JSON

Started once (bwrap, the interpreter, the evaluator's imports); then, one evaluation at a time, it
takes a request on CONTROL_FD (a SOCK_SEQPACKET socket: JSON plus the evaluation's stdout and stderr
pipes), forks a child and answers {"pid"} when it started and {"status"} when it ended. The host
itself never runs candidate code: only the child does, after it took the protections a cold run's
launcher takes (its own session and process group, rlimits, a pinned core, a throw-away uid, a
scrubbed environment, its private working directory). When the child has ended, a cleaner running
as the same throw-away uid kills whatever that uid still runs and removes its System V IPC objects,
so nothing of one evaluation reaches the next: the uid can write nowhere but its working directory,
which looplab removes. stdlib only; looplab/sandbox/warm.py is the other side.
"""

import ctypes
import gc
import importlib
import json
import os
import resource
import runpy
import signal
import socket
import sys
import time
import traceback

_IPC_RMID = 0
_PATH = list(sys.path)  # `python -I script`'s own (no script folder), as the host started with it


def _nproc_of(uid):
    """Processes the uid already runs (RLIMIT_NPROC counts them all)."""
    n = 0
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                n += os.stat("/proc/" + p).st_uid == uid
            except OSError:
                pass
    return n


_CODE = {}  # script path -> its compiled code: compiled once, in the host, before any child runs it


def _compiled(script):
    if script not in _CODE:
        with open(script, "rb") as f:
            _CODE[script] = compile(f.read(), script, "exec")
    return _CODE[script]


def _run_script(script):
    """runpy.run_path(script, run_name="__main__"), with the code the host compiled."""
    code = _CODE.get(script)
    if code is None:
        runpy.run_path(script, run_name="__main__")
        return
    main = type(sys)("__main__")
    main.__file__ = script
    main.__builtins__ = __builtins__
    sys.modules["__main__"] = main
    exec(code, main.__dict__)


def _left_behind(uid):
    """Whether the uid still runs a process or owns an IPC object (then a cleaner must run)."""
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if os.stat("/proc/" + p).st_uid == uid:
                    return True
            except OSError:
                pass
    for kind, at in (("shm", 7), ("msg", 7), ("sem", 4)):
        try:
            with open("/proc/sysvipc/" + kind) as f:
                for line in f.read().splitlines()[1:]:
                    cols = line.split()
                    if len(cols) > at and int(cols[at]) == uid:
                        return True
        except OSError:
            pass
    return False


def _child(req, out_fd, err_fd):
    """Becomes the evaluation: protections first, then the script (never returns)."""
    code = 1
    try:
        os.setsid()
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        os.closerange(3, 1 << 16)  # the control socket and every other descriptor of the host
        cpu, mem, fsize, nofile, nproc = req["limits"]
        uid = req["uid"]
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        resource.setrlimit(resource.RLIMIT_MSGQUEUE, (0, 0))  # POSIX queues would outlive the child
        if req["pin"] >= 0:
            os.sched_setaffinity(0, {req["pin"]})
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)  # from here on: no capability, nothing the host could do
        n = _nproc_of(uid) if req.get("seen") else 0  # a uid this host never ran has no process here
        resource.setrlimit(resource.RLIMIT_NPROC, (n + nproc, n + nproc))
        os.umask(0o022)
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req["env"])
        sys.dont_write_bytecode = True  # its folder is removed after it: a .pyc there would only cost time
        sys.argv[:] = req["argv"]
        sys.path[:] = _PATH
        _run_script(req["script"])
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # noqa: B036 - the child's own failure is its verdict: print it, exit 1
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: S110 - a closed or broken stream: nothing more to say
                pass
        os._exit(code & 0xFF)


def _remove_ipc(uid):
    """System V IPC objects of the uid (they outlive every process); run as that uid."""
    libc = ctypes.CDLL(None, use_errno=True)
    calls = {"shm": lambda i: libc.shmctl(i, _IPC_RMID, None), "msg": lambda i: libc.msgctl(i, _IPC_RMID, None),
             "sem": lambda i: libc.semctl(i, 0, _IPC_RMID)}
    for kind, remove in calls.items():
        try:
            with open("/proc/sysvipc/" + kind) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            # shm: key shmid perms size cpid lpid nattch uid ...; msg: key msqid perms cbytes qnum lspid lrpid uid
            # ...; sem: key semid perms nsems uid ...
            at = {"shm": 7, "msg": 7, "sem": 4}[kind]
            if len(cols) > at and int(cols[at]) == uid:
                remove(int(cols[1]))


def _clean(uid):
    """Kill every process of the uid and remove its IPC objects, as the uid itself (no capability needed)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            for _ in range(50):  # kill(-1): every process this uid may signal, but not the cleaner itself
                try:
                    os.kill(-1, signal.SIGKILL)
                except ProcessLookupError:
                    break
            _remove_ipc(uid)
            os._exit(0)
        except BaseException:  # noqa: B036 - reported by the host, which is then replaced
            traceback.print_exc()
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        sys.stderr.write(f"warm host: the cleaner of uid {uid} ended with status {status}\n")
    return status == 0


def serve(ctl):
    seen = set()  # uids this host's children ran as
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(ctl, 1 << 20, 2)
        except OSError:
            return
        if not msg:
            return  # looplab is gone
        received = time.monotonic()
        req = json.loads(msg)
        if len(fds) != 2:
            for fd in fds:
                os.close(fd)
            ctl.send(json.dumps({"error": "expected two descriptors"}).encode())
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            _compiled(req["script"])
        except (OSError, SyntaxError, ValueError):
            pass  # the child fails on it and says so
        req["seen"] = req["uid"] in seen
        seen.add(req["uid"])
        pid = os.fork()
        if pid == 0:
            _child(req, fds[0], fds[1])
        forked = time.monotonic()
        for fd in fds:
            os.close(fd)
        _, status = os.waitpid(pid, 0)
        ended = time.monotonic()
        clean = _clean(req["uid"]) if _left_behind(req["uid"]) else True
        ctl.send(json.dumps({"status": status, "clean": clean,
                             "times": [received, forked, ended, time.monotonic()]}).encode())


def main():
    ctl = socket.socket(fileno=int(sys.argv[1]))
    os.set_inheritable(ctl.fileno(), False)
    imported = []
    for name in json.loads(sys.argv[2]):
        try:
            importlib.import_module(name)
            imported.append(name)
        except BaseException:  # noqa: B036 - an import that fails here will fail (and be reported) in the child
            pass
    gc.freeze()  # what is imported stays out of the children's collections (they would copy every page)
    ctl.send(json.dumps({"ready": True, "imported": imported}).encode())
    serve(ctl)


if __name__ == "__main__":
    main()

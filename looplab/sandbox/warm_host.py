"""A warm evaluation host: runs inside the bubblewrap sandbox and forks a fresh child per evaluation.

    python -I warm_host.py CONTROL_FD IMPORTS_JSON

Started once (bwrap, the interpreter, the evaluator's imports); then, one evaluation at a time, it
takes a request on CONTROL_FD (a SOCK_SEQPACKET socket: JSON plus the evaluation's stdout and stderr
pipes), hands it to a child and answers {"status"} when the child ended. The host itself never runs
candidate code: only the child does, after it took the protections a cold run's launcher takes (its own
session and process group, rlimits, a pinned core, a throw-away uid, a scrubbed environment, its private
working directory). The child is forked ahead, when the host is idle: it waits, in the host's state, for
its request, and takes every protection that depends on it (all but its session) only once it came.
It says its exit code on a status pipe just before it exits, so the host answers while the kernel still
frees its memory, when /proc shows it is exiting by that exit (not by a signal). Then, before the host
takes the next request, it reaps the child and, when the throw-away uid left anything, a cleaner running
as that uid kills whatever it still runs and removes its System V IPC objects, so nothing of one
evaluation reaches the next: the uid can write nowhere but its working directory, which looplab removes.
A cleaner that fails makes the host refuse the next request (looplab replaces it). stdlib only;
looplab/sandbox/warm.py is the other side.
"""

import contextlib
import ctypes
import gc
import importlib
import json
import os
import re
import resource
import runpy
import select
import signal
import socket
import sys
import time
import traceback

_IPC_RMID = 0
_PF_EXITING, _PF_SIGNALED = 0x4, 0x400  # task flags (/proc/PID/stat, field 9)
_SIGKILL_BIT = 1 << (signal.SIGKILL - 1)
_STATUS_FD = 3  # the child's end of its status pipe
_STATUS = re.compile(rb"([0-9a-f]{32}) (\d{1,3})\n")  # a token only the host and the child know, the exit code
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
    try:
        code = _compiled(script)
    except (OSError, SyntaxError, ValueError):
        runpy.run_path(script, run_name="__main__")  # fails as a script would, and says why
        return
    main = type(sys)("__main__")
    main.__file__ = script
    main.__builtins__ = __builtins__
    main.__looplab_warm__ = True  # SystemExit ends the script at once here: no shutdown, no threads waited for
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


def _child(req, out_fd, err_fd, status_fd):
    """Becomes the evaluation: protections first, then the script (never returns)."""
    code = 1
    token = req.pop("token").encode()  # what the host's request said: a library writing to descriptor 3 cannot know it
    try:
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        os.dup2(status_fd, _STATUS_FD, inheritable=False)
        os.closerange(_STATUS_FD + 1, 1 << 16)  # the control socket and every other descriptor of the host
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
        for fd in (0, 1, 2):  # looplab has all the output once the last holder closed it: now, not after the exit
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(OSError):
            os.write(_STATUS_FD, b"%s %d\n" % (token, code & 0xFF))
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
    return os.waitpid(pid, 0)[1] == 0


def _prefork():
    """The next child, forked while the host is idle: its own session (the one protection that needs no
    request), then it waits, in the host's state, for its request on a socket of its own."""
    sys.stdout.flush()
    sys.stderr.flush()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:
        try:
            ours.close()
            os.setsid()
            msg, fds, _, _ = socket.recv_fds(theirs, 1 << 20, 3)
            if msg and len(fds) == 3:
                _child(json.loads(msg), *fds)
        finally:
            os._exit(1)  # the host is gone, or its request is malformed: nothing ran
    theirs.close()
    return pid, ours


def _exiting_by_its_exit(pid):
    """Whether the child, which reported its exit code, is exiting by that exit: the kernel decides the exit status
    before it sets PF_EXITING; a status decided by a signal instead shows as PF_SIGNALED or as the SIGKILL a group
    exit sends every other thread. False (then waitpid says): not exiting yet, by a signal, or already gone."""
    deadline = time.monotonic() + 0.01
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            if fields[0] in (b"Z", b"X"):
                return False  # nothing left to wait for
            flags = int(fields[6])
            if flags & _PF_EXITING:
                if flags & _PF_SIGNALED:
                    return False
                with open(f"/proc/{pid}/status", "rb") as f:
                    pending = [int(line.split()[1], 16) for line in f if line.startswith((b"SigPnd:", b"ShdPnd:"))]
                return len(pending) == 2 and not any(p & _SIGKILL_BIT for p in pending)
        except (OSError, IndexError, ValueError):
            return False
        os.sched_yield()
    return False


def _ended(pid, status_r, token):
    """The child's wait status, and whether it is reaped (not yet: it exits by the exit it reported)."""
    pidfd = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([status_r, pidfd], [], [])
    finally:
        os.close(pidfd)
    if status_r in ready:
        said = _STATUS.fullmatch(os.read(status_r, 64))
        if said and said[1] == token and _exiting_by_its_exit(pid):
            return int(said[2]) << 8, False
    return os.waitpid(pid, 0)[1], True


def serve(ctl):
    seen = set()  # uids this host's children ran as
    refuse = ""  # why the host takes no more evaluations
    pid, child = _prefork()
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(ctl, 1 << 20, 2)
        except OSError:
            return
        if not msg:
            return  # looplab is gone
        received = time.monotonic()
        req = json.loads(msg)
        if len(fds) != 2 or refuse:
            for fd in fds:
                os.close(fd)
            ctl.send(json.dumps({"refused": refuse} if refuse else {"error": "expected two descriptors"}).encode())
            continue
        req["seen"] = req["uid"] in seen
        req["token"] = os.urandom(16).hex()
        seen.add(req["uid"])
        status_r, status_w = os.pipe()
        try:
            socket.send_fds(child, [json.dumps(req).encode()], [*fds, status_w])
        except OSError:  # the child forked ahead is gone: one now
            os.waitpid(pid, 0)
            child.close()
            pid, child = _prefork()
            socket.send_fds(child, [json.dumps(req).encode()], [*fds, status_w])
        handed = time.monotonic()
        child.close()
        for fd in (*fds, status_w):
            os.close(fd)
        status, reaped = _ended(pid, status_r, req["token"].encode())
        ended = time.monotonic()
        ctl.send(json.dumps({"status": status, "times": [received, handed, ended, time.monotonic()]}).encode())
        # Answered; the child is reaped and its uid cleaned up before the next request is read.
        if not reaped:
            os.waitpid(pid, 0)
        os.close(status_r)
        for _ in range(3):  # again when looplab's own sweep of the uid (after the answer) killed the cleaner too
            if not _left_behind(req["uid"]) or _clean(req["uid"]):
                break
        else:
            refuse = f"could not clean up after uid {req['uid']}"
            sys.stderr.write(f"warm host: {refuse}\n")
        try:
            _compiled(req["script"])  # once, here: every later child has it
            gc.freeze()
        except (OSError, SyntaxError, ValueError):
            pass  # the child fails on it and says so
        pid, child = _prefork()


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

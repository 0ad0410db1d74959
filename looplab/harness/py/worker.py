"""The worker side: a zygote that forks one worker per case; each worker holds the candidate.

usage: python -I -S worker.py SETUP_FD CONTROL_FD   (started by the supervisor, never imported
for its code; the supervisor reads only the descriptor numbers below)

The zygote reads the setup (candidate source, target name, modules to pre-import, sys.path, a
seccomp BPF program) from SETUP_FD, imports the modules once, and then, on each "fork" from the
supervisor (CONTROL_FD, a unix socket), forks a worker and hands the supervisor the worker's two
pipe ends; on "wait PID" it reaps that worker and answers its wait status. The zygote never runs
candidate code and holds nothing about any case. A worker keeps only its two pipes (on CMD_FD and
REPLY_FD) and /dev/null, installs the filter on itself, and only then compiles and runs the
candidate in a fresh module; then, for every batch of argument tuples it reads, it calls the
target on each and writes the results back as JSON. It never learns the case, the nonce, the seed
or the expected results.

Everything a worker does after the candidate has run is untrusted (the candidate can rewrite it);
the supervisor relies only on what it can check from outside.
"""

import gc
import marshal
import os
import sys

CMD_FD, REPLY_FD = 100, 101  # where a worker's pipes land: the filter allows exactly these
_HEADER = 4  # little-endian payload length before every frame


def read_exact(fd: int, n: int) -> bytes:
    parts, left = [], n
    while left:
        chunk = os.read(fd, left)
        if not chunk:
            raise EOFError
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def read_frame(fd: int) -> bytes:
    return read_exact(fd, int.from_bytes(read_exact(fd, _HEADER), "little"))


def write_frame(fd: int, data: bytes) -> None:
    view = memoryview(len(data).to_bytes(_HEADER, "little") + data)
    while view:
        view = view[os.write(fd, view):]


def forget(package: str, allowed: list[str]) -> None:
    """Drop a package the worker used for itself, so that `import` of it fails like any other
    (reloading it would need open()); unless the experiment allows it."""
    if package in allowed:
        return
    for name in [m for m in sys.modules if m in (package, "_" + package) or m.startswith(package + ".")]:
        del sys.modules[name]


def confine(bpf: bytes, seccomp_nr: int) -> None:
    """Install the filter with seccomp(2) and TSYNC (every thread, should there be any), after
    no_new_privs."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)

    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    buf = ctypes.create_string_buffer(bpf, len(bpf))
    prog = Prog(len(bpf) // 8, ctypes.addressof(buf))
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    # SECCOMP_SET_MODE_FILTER = 1, SECCOMP_FILTER_FLAG_TSYNC = 1
    if libc.syscall(seccomp_nr, 1, 1, ctypes.byref(prog)) != 0:
        raise OSError(ctypes.get_errno(), "seccomp(SECCOMP_SET_MODE_FILTER) failed")


def describe(e: BaseException) -> str:
    try:
        text = str(e)
    except Exception:  # a candidate's exception whose __str__ raises
        text = "?"
    return f"{type(e).__name__}: {text}"[:500]


def load(setup: dict, dumps) -> object:
    """In a fresh worker: confine, then run the candidate; its target, or None after a reply why not."""
    try:
        confine(setup["bpf"], setup["seccomp"])
        for own in ("ctypes", "socket"):  # the zygote's tools
            forget(own, setup["imports"])
    except OSError as e:
        write_frame(REPLY_FD, dumps({"error": f"cannot confine the worker: {describe(e)}"}).encode())
        return None
    module = type(sys)("candidate")
    module.__file__ = "candidate.py"
    sys.modules["candidate"] = module  # dataclasses and pickle look a class's module up here
    try:
        code = compile(setup["source"], "candidate.py", "exec")
        exec(code, module.__dict__)  # the candidate's top level runs here, already confined
    except Exception as e:
        write_frame(REPLY_FD, dumps({"error": f"candidate failed to load: {describe(e)}"}).encode())
        return None
    fn = module.__dict__.get(setup["target"])
    if not callable(fn):
        write_frame(REPLY_FD, dumps({"error": f"candidate defines no function {setup['target']}"}).encode())
        return None
    write_frame(REPLY_FD, dumps({"loaded": True}).encode())
    return fn


def serve(fn, dumps) -> None:
    """One batch per frame: call fn(*args) for each argument tuple, reply with every result."""
    while True:
        try:
            batch = marshal.loads(read_frame(CMD_FD))
        except EOFError:
            return
        out = []
        try:
            for args in batch:
                out.append(fn(*args))
        except Exception as e:
            write_frame(REPLY_FD, dumps({"raised": describe(e), "index": len(out)}).encode())
            continue
        try:
            data = dumps({"results": out})
        except (TypeError, ValueError, RecursionError) as e:
            data = dumps({"unserialisable": describe(e)})
        write_frame(REPLY_FD, data.encode())


def worker(setup: dict, failed: str | None, dumps, cmd: int, reply: int) -> None:
    """The forked child: keep only its pipes (on fixed numbers), then load and serve; never returns."""
    code = 0
    try:
        os.dup2(cmd, CMD_FD)
        os.dup2(reply, REPLY_FD)
        os.closerange(3, CMD_FD)
        os.closerange(REPLY_FD + 1, 1 << 20)  # the zygote's socket, its other pipes: gone
        if failed:
            write_frame(REPLY_FD, dumps({"error": failed}).encode())
        else:
            fn = load(setup, dumps)
            if fn is not None:
                serve(fn, dumps)
    except SystemExit as e:  # sys.exit() in the candidate: its code, as a process would exit
        code = e.code if isinstance(e.code, int) else int(e.code is not None)
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def zygote(setup_fd: int, control_fd: int) -> None:
    setup = marshal.loads(read_frame(setup_fd))
    os.close(setup_fd)
    sys.path[:] = setup["path"]
    import ctypes  # noqa: F401 -- loaded once here, for every worker's confine()
    import json
    import socket

    dumps = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode
    forget("json", setup["imports"])
    failed = None
    for name in setup["imports"]:
        try:
            __import__(name)
        except Exception as e:
            failed = f"cannot pre-import {name}: {describe(e)}"
            break
    gc.collect()
    gc.freeze()  # shared with every worker, never scanned
    gc.disable()  # for every candidate alike: none can buy time by switching the collector off
    control = socket.socket(fileno=control_fd)
    while True:
        command = control.recv(64).decode()
        if not command:
            return  # the supervisor is done
        if command.startswith("wait "):
            control.send(str(os.waitpid(int(command[5:]), 0)[1]).encode())
            continue
        cmd_r, cmd_w = os.pipe()
        reply_r, reply_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            worker(setup, failed, dumps, cmd_r, reply_w)
        os.close(cmd_r)
        os.close(reply_w)
        socket.send_fds(control, [str(pid).encode()], [cmd_w, reply_r])
        os.close(cmd_w)
        os.close(reply_r)


if __name__ == "__main__":
    zygote(int(sys.argv[1]), int(sys.argv[2]))

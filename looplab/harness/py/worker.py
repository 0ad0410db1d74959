"""The worker: the one process that holds the candidate. Run by the supervisor, never imported.

usage: python -I -S worker.py CMD_FD REPLY_FD

It reads a setup frame (candidate source, target name, modules to pre-import, sys.path, a seccomp
BPF program), imports the modules, installs the filter on every thread, and only then compiles and
runs the candidate in a fresh module. Then, for every batch of argument tuples it reads, it calls
the target on each and writes the results back as JSON. It never learns the case, the nonce, the
seed or the expected results, and holds no descriptor but its two pipes, /dev/null and the log.

Everything here after the candidate has run is untrusted (the candidate can rewrite it); the
supervisor relies only on what it can check from outside.
"""

import gc
import marshal
import os
import sys

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
    """Install the filter with seccomp(2) and TSYNC (a thread a pre-imported module started is
    confined too), after no_new_privs."""
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


def load(setup: dict, reply: int, dumps) -> object:
    """The target function, or None after a reply saying why not."""
    try:
        for name in setup["imports"]:
            __import__(name)
    except Exception as e:
        write_frame(reply, dumps({"error": f"cannot pre-import {name}: {describe(e)}", "setup": True}).encode())
        return None
    gc.collect()
    gc.freeze()
    gc.disable()  # for every candidate alike: none can buy time by switching the collector off
    try:
        confine(setup["bpf"], setup["seccomp"])
        forget("ctypes", setup["imports"])
    except OSError as e:
        write_frame(reply, dumps({"error": f"cannot confine the worker: {describe(e)}", "setup": True}).encode())
        return None
    module = type(sys)("candidate")
    module.__file__ = "candidate.py"
    sys.modules["candidate"] = module  # dataclasses and pickle look a class's module up here
    try:
        code = compile(setup["source"], "candidate.py", "exec")
        exec(code, module.__dict__)  # the candidate's top level runs here, already confined
    except Exception as e:
        write_frame(reply, dumps({"error": f"candidate failed to load: {describe(e)}"}).encode())
        return None
    fn = module.__dict__.get(setup["target"])
    if not callable(fn):
        write_frame(reply, dumps({"error": f"candidate defines no function {setup['target']}"}).encode())
        return None
    write_frame(reply, dumps({"loaded": True}).encode())
    return fn


def serve(fn, cmd: int, reply: int, dumps) -> None:
    """One batch per frame: call fn(*args) for each argument tuple, reply with every result."""
    while True:
        try:
            batch = marshal.loads(read_frame(cmd))
        except EOFError:
            return
        out = []
        try:
            for args in batch:
                out.append(fn(*args))
        except Exception as e:
            write_frame(reply, dumps({"raised": describe(e), "index": len(out)}).encode())
            continue
        try:
            data = dumps({"results": out})
        except (TypeError, ValueError, RecursionError) as e:
            data = dumps({"unserialisable": describe(e)})
        write_frame(reply, data.encode())


def main() -> None:
    cmd, reply = int(sys.argv[1]), int(sys.argv[2])
    setup = marshal.loads(read_frame(cmd))
    sys.path[:] = setup["path"]
    import json

    dumps = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode
    forget("json", setup["imports"])
    fn = load(setup, reply, dumps)
    if fn is not None:
        serve(fn, cmd, reply, dumps)


if __name__ == "__main__":
    main()

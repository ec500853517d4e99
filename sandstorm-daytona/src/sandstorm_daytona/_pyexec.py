"""The one-request run of Python code as one program: ``python3 -u -c <this file>``.

Not imported by the package: ``_command.build_exec`` sends this file's text (less its
docstring, comments, blank lines and closing ``if``) to the sandbox, where
``_command.PYTHON_LOADER`` compiles it (once per sandbox and interpreter) and runs
``_child(*_main())`` as the closing ``if`` below would. There it keeps the protocol of the
shell wrapper (``_command._EXEC_BODY``) with one process instead of about nine:

- The run's key directory ``$C/<token>`` (the user's cache directory) is claimed with one
  ``mkdir``; a resent request finds it taken, waits for the first run's ``done`` file and
  answers the reply kept there, so the code never runs twice.
- The code runs in a forked child, in a new session (its own process group, which is
  killed at the deadline and once the code is done), with stdin from a file (or
  ``/dev/null``), stdout and stderr through pipes that the parent reads apart, each cut
  after ``cap`` bytes (past that the parent stops reading and the code gets ``EPIPE``).
- The child runs the code as ``python3 -u <run dir>/main.py`` would, without starting a
  second interpreter: ``__main__`` as a fresh one (``__file__``, ``__loader__``...),
  ``sys.argv``, ``sys.orig_argv``, ``sys.path[0]``, the module table as at start-up,
  tracebacks without this file's frames, the exit code (``SystemExit``, uncaught
  exceptions, ``KeyboardInterrupt`` as SIGINT), threads and ``atexit`` (the interpreter
  finishes as after a script). One difference remains: two frames of this file sit below
  the code's (``sys._getframe(1)``, ``inspect.stack()``, a ``warnings`` stacklevel past
  the top). When the code's env changes what an interpreter reads as it starts
  (``PATH``, ``HOME``, ``PYTHON*``, locale, loader variables), or the wrapper started
  without stdio, the child execs ``python3 -u <run dir>/main.py`` instead.
- The reply is ``\\n<marker>\\n<stdout base64><marker>\\n<stderr base64><marker> <exit>
  <timed out>\\n`` (``_command.parse_exec``); exit codes as a shell reports them (128 +
  signal).

It runs on the sandbox's ``python3``, any version from 3.6: no newer syntax, no imports
beyond built-in modules, annotations quoted where a generic would not evaluate.

Arguments: token, marker, run dir, upload dir, timeout (s), cap (bytes), keep (minutes),
tries (resend polls), done tokens (space-separated), then the code and the stdin each as
a mode (``t`` text, ``b`` base64, ``u`` uploaded, ``n`` none) and a payload. The code's
env comes in ``SANDSTORM_RUN_ENV`` (``NAME=<base64> ...``), kept out of the command line
(which any process can read) and out of the code's environment.
"""

# ruff: noqa: SIM105 (try/except/pass: contextlib is no start-up module, nor worth one)
import os
import sys

_FRESH = {name: value for name, value in globals().items() if name.startswith("__")}
_BEFORE = set(sys.modules)

TYPE_CHECKING = False
if TYPE_CHECKING:  # for type checkers only: nothing more is imported at start-up
    import types
    from collections.abc import Callable

# What an interpreter reads from its environment as it starts.
_STARTUP_PREFIXES = ("PYTHON", "LC_", "LD_", "MALLOC_", "GLIBC_", "GCONV_")
_STARTUP_NAMES = ("LANG", "LANGUAGE", "PATH", "HOME", "TZ")
_ENV = "SANDSTORM_RUN_ENV"


def _write(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _read(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()


def _rmtree(path: str) -> None:
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    _rmtree(entry.path)
                else:
                    try:
                        os.unlink(entry.path)
                    except OSError:
                        pass
        os.rmdir(path)
    except NotADirectoryError:
        try:
            os.unlink(path)
        except OSError:
            pass
    except OSError:
        pass


def _keys() -> str:
    # the shell wrapper's and kill_command's choice: XDG cache, else ~/.cache, else /tmp
    env = os.environ
    cache = env.get("XDG_CACHE_HOME") or (env.get("HOME") or "/tmp") + "/.cache"
    keys = cache + "/sandstorm-runs"
    if not os.path.isdir(keys):
        try:
            os.makedirs(keys, exist_ok=True)
        except OSError:
            keys = "/tmp/.sandstorm-runs"
            os.makedirs(keys, exist_ok=True)
    ignore = keys + "/.gitignore"
    if not os.path.isfile(ignore):
        try:
            _write(ignore, b"*\n")
        except OSError:
            pass
    return keys


def _clean(keys: str, key: str, done: "list[str]", keep: float) -> None:
    # the runs the client is done with, and any kept result older than `keep` minutes
    for token in done:
        _rmtree(keys + "/" + token)
        _rmtree("/tmp/.sandstorm-" + token)
    import time

    now = time.time()
    try:
        with os.scandir(keys) as entries:
            names = [entry.name for entry in entries if entry.is_dir(follow_symlinks=False)]
    except OSError:
        return
    for name in names:
        path = keys + "/" + name
        try:
            old = now - os.stat(path + "/done").st_mtime > keep * 60
        except OSError:
            continue
        if old and path != key:
            _rmtree(path)
            _rmtree("/tmp/.sandstorm-" + name)


def _emit(reply: bytes) -> None:
    view = memoryview(reply)
    while view:
        view = view[os.write(1, view) :]


def _again(key: str, tries: int) -> None:
    # the key is taken: a resent request; answer the first run's reply once it is kept
    import time

    done = key + "/done"
    for _ in range(tries):
        if os.path.isfile(done):
            break
        time.sleep(0.1)
    try:
        reply = _read(done)
    except OSError:
        return
    _emit(reply)


def _payload(mode: str, text: str, uploaded: str, target: str) -> bytes:
    # the bytes of a payload, also written to `target` (moved there when uploaded)
    if mode == "u":
        try:
            os.rename(uploaded, target)
        except OSError:  # another file system: copy
            _write(target, _read(uploaded))
            os.unlink(uploaded)
        return _read(target)
    if mode == "b":
        import binascii

        data = binascii.a2b_base64(text)
    else:
        data = os.fsencode(text)
    _write(target, data)
    return data


def _b64(data: "bytes | bytearray") -> bytes:
    import binascii

    if not data:
        return b""
    encoded = binascii.b2a_base64(bytes(data), newline=False)
    lines = [encoded[i : i + 76] for i in range(0, len(encoded), 76)]
    return b"\n".join(lines) + b"\n"


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, 9)
    except OSError:
        pass


def _env() -> "list[tuple[str, str]]":
    import binascii

    pairs = []
    for item in os.environ.pop(_ENV, "").split():
        name, _, value = item.partition("=")
        pairs.append((name, os.fsdecode(binascii.a2b_base64(value))))
    return pairs


def _own_interpreter(env: "list[tuple[str, str]]") -> bool:
    # whether the code needs an interpreter started with its env (see the docstring)
    if sys.stdin is None or sys.stdout is None or sys.stderr is None:
        return True
    for name, value in env:
        startup = name.startswith(_STARTUP_PREFIXES) or name in _STARTUP_NAMES
        if startup and os.environ.get(name) != value:
            return True
    return False


def _child(
    path: str,
    source: bytes,
    stdin: str,
    fds: "list[int]",
    env: "list[tuple[str, str]]",
    own: bool,
) -> None:
    # In the forked child: becomes the code, as `python3 -u path` runs it.
    try:
        os.setsid()
        fd = os.open(stdin, os.O_RDONLY)
        os.dup2(fd, 0)
        os.dup2(fds[1], 1)
        os.dup2(fds[3], 2)
        for each in (fd, *fds):
            os.close(each)
        for name, value in env:
            os.environ[name] = value
        if own:
            try:
                os.execvp("python3", ["python3", "-u", path])
            except OSError as exc:
                os.write(2, ("python3: " + str(exc.strerror) + "\n").encode())
                os._exit(127)
        for name in list(sys.modules):
            if name not in _BEFORE:
                del sys.modules[name]
        sys.argv[:] = [path]
        if hasattr(sys, "orig_argv"):
            sys.orig_argv[:] = [sys.orig_argv[0], "-u", path]
        if not getattr(sys.flags, "safe_path", False) and sys.path and sys.path[0] == "":
            sys.path[0] = os.path.dirname(path)
        external = sys.modules.get("_frozen_importlib_external")
        loader = getattr(external, "SourceFileLoader", None)
        fresh = _FRESH
        finish = _finish
        system = sys
    except BaseException:
        os._exit(127)
    # From here on this file's globals are the code's: only locals and builtins.
    main = globals()
    main.clear()
    main.update(fresh)
    if "__annotations__" in main:
        main["__annotations__"] = {}
    main["__doc__"] = None
    main["__file__"] = path
    main["__cached__"] = None
    if loader is not None:
        main["__loader__"] = loader("__main__", path)
    try:
        exec(compile(source, path, "exec", dont_inherit=True), main)
    except SystemExit as exc:
        finish(main, exc, False)  # the interpreter exits at once, __file__ still set
    except BaseException as exc:
        # Printed as the interpreter prints it, less this file's frames
        trace = exc.__traceback__
        while trace is not None and trace.tb_frame.f_code.co_filename == "<string>":
            trace = trace.tb_next
        exc.__traceback__ = trace
        system.excepthook(type(exc), exc, trace)
        main.pop("__file__", None)
        main.pop("__cached__", None)
        finish(main, None, isinstance(exc, KeyboardInterrupt))
    # a script's __file__ and __cached__ go once it has run
    main.pop("__file__", None)
    main.pop("__cached__", None)
    finish(main, None, False, 0)


def _exit_status(stop: BaseException, system: "types.ModuleType" = sys) -> int:
    # what the interpreter makes of a SystemExit: None 0, an int itself, else printed, 1
    code = getattr(stop, "code", None)
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    try:
        if system.stderr is not None:
            system.stderr.write(str(code) + "\n")
    except BaseException:
        pass
    return 1


def _flushed(system: "types.ModuleType" = sys) -> bool:
    ok = True
    for stream in (system.stdout, system.stderr):
        try:
            if stream is not None:
                stream.flush()
        except BaseException:
            ok = False
    return ok


def _finish(
    main: "dict[str, object]",
    stop: "BaseException | None",
    interrupted: bool,
    status: int = 1,
    system: "types.ModuleType" = sys,
    before: "set[str]" = _BEFORE,
    exit_status: "Callable[[BaseException], int]" = _exit_status,
    flushed: "Callable[[], bool]" = _flushed,
) -> None:
    # The code's process ends as the interpreter ends a script (its threads, atexit, its
    # streams, the status of a SystemExit or an interrupt), less tearing down the whole
    # interpreter it was forked from (2-3 ms of copy-on-write faults): what the code's
    # modules hold is finalized, as a real exit does (a file written and never closed is
    # flushed), then os._exit. Only arguments: the globals are the code's by now.
    import _signal  # type: ignore[import-not-found]
    import atexit
    import gc
    import os

    # what is needed after the code's modules are cleared (gc may be one of them)
    collect, kill, getpid, setsig, end = gc.collect, os.kill, os.getpid, _signal.signal, os._exit
    if stop is not None:
        status = exit_status(stop)
    try:
        threading = system.modules.get("threading")
        if threading is not None:
            threading._shutdown()
    except BaseException:
        pass
    try:
        atexit._run_exitfuncs()
    except BaseException:
        pass  # printed already (3.6 raises the last one again)
    if not flushed():
        status = 120
    # in the interpreter's order: __main__ first (the modules its objects' finalizers use
    # still whole), then the modules the code imported, the last imported first
    modules = [m for n, m in reversed(list(system.modules.items())) if n not in before]
    for group in ([main], [getattr(m, "__dict__", {}) for m in modules]):
        for names in group:
            try:
                for first in (True, False):
                    for name in list(names):
                        private = name.startswith("_") and not name.startswith("__")
                        if private == first and name != "__builtins__":
                            names[name] = None
            except BaseException:
                pass
        try:
            collect()
        except BaseException:
            pass
    if not flushed():
        status = 120
    if interrupted and system.version_info >= (3, 8):
        setsig(2, 0)  # SIGINT, SIG_DFL
        kill(getpid(), 2)
        status = 130
    end(status & 0xFF)


def _wait(pid: int, reads: "dict[int, bytearray]", cap: int, timeout: float) -> "tuple[int, bool]":
    # Reads the code's output until it is done, killed at the deadline if need be: its
    # exit code, and whether it timed out. Each stream stops being read at `cap` bytes.
    import select
    import time

    deadline = time.monotonic() + timeout
    poller = select.poll()
    for fd in reads:
        poller.register(fd, select.POLLIN)
    live = set(reads)
    pidfd = -1  # readable once the code has exited, where the kernel has them
    try:
        pidfd = os.pidfd_open(pid)
        poller.register(pidfd, select.POLLIN)
    except (AttributeError, OSError):
        pass
    status = -1
    exited = timed_out = False
    end = deadline
    while live or status < 0:
        now = time.monotonic()
        if status < 0:
            if not timed_out and now >= deadline:
                _killpg(pid)
                timed_out = True
            wait = 1.0 if timed_out else deadline - now
            if pidfd < 0:
                wait = min(wait, 0.01)
        elif now < end:
            wait = end - now
        else:
            break  # something outside the group holds the pipes
        for fd, _ in poller.poll(wait * 1000):
            if fd == pidfd:
                poller.unregister(fd)
                os.close(fd)
                pidfd, exited = -2, True
                continue
            data = os.read(fd, min(65536, cap - len(reads[fd])))
            reads[fd] += data
            if not data or len(reads[fd]) >= cap:
                poller.unregister(fd)
                os.close(fd)
                live.discard(fd)
        if status < 0 and pidfd == -1 and not exited:
            flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
            exited = os.waitid(os.P_PID, pid, flags) is not None
        if status < 0 and exited:
            _killpg(pid)  # what the code left behind, while its pid is still taken
            _, raw = os.waitpid(pid, 0)
            status = 128 + os.WTERMSIG(raw) if os.WIFSIGNALED(raw) else os.WEXITSTATUS(raw)
            end = max(deadline, time.monotonic() + 1.0)
    for fd in live:
        os.close(fd)
    return status, timed_out


def _stdio() -> None:
    # fds 0-2 open (on /dev/null) whatever the wrapper was given: the pipes come after
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            os.open("/dev/null", os.O_RDWR)


def _main() -> "tuple[str, bytes, str, list[int], list[tuple[str, str]], bool]":
    # The parent's work; returns only in the child, what _child takes, and ends the
    # parent with os._exit (nothing buffered, no finalisation to wait for).
    args = sys.argv[1:]
    token, marker, run, staging = args[0:4]
    timeout, cap, keep, tries = float(args[4]), int(args[5]), float(args[6]), int(args[7])
    done = args[8].split()
    env = _env()
    _stdio()
    keys = _keys()
    key = keys + "/" + token
    try:
        os.mkdir(key)
    except OSError:
        _again(key, tries)
        os._exit(0)
    try:
        os.mkdir(run)
    except FileExistsError:
        pass
    source = _payload(args[9], args[10], staging + "/main.py", run + "/main.py")
    stdin = "/dev/null"
    if args[11] != "n":
        stdin = run + "/stdin"
        _payload(args[11], args[12], staging + "/stdin", stdin)
    if args[9] == "u":
        try:
            os.rmdir(staging)
        except OSError:
            pass
    own = _own_interpreter(env)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        return run + "/main.py", source, stdin, [out_r, out_w, err_r, err_w], env, own
    os.close(out_w)
    os.close(err_w)
    try:
        _write(run + "/pgid", str(pid).encode())
    except OSError:
        pass
    _clean(keys, key, done, keep)
    reads = {out_r: bytearray(), err_r: bytearray()}
    status, timed_out = _wait(pid, reads, cap, max(timeout, 0.001))
    line = marker.encode()
    reply = b"".join(
        [
            b"\n" + line + b"\n",
            _b64(reads[out_r]),
            line + b"\n",
            _b64(reads[err_r]),
            line + b" %d %d\n" % (status, 1 if timed_out else 0),
        ]
    )
    try:  # kept for a resent request; gone when the run was abandoned (kill_command)
        _write(key + "/reply", reply)
        os.rename(key + "/reply", key + "/done")
    except OSError:
        pass
    _emit(reply)
    os._exit(0)


if __name__ == "__main__":
    # the code runs two frames below the top: this one and _child's
    _child(*_main())

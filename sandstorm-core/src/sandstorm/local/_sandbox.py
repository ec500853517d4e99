"""The isolation engine: a stdlib-only fork server that runs each request in a fresh sandbox.

This file is executed as a script by a separate, pre-started interpreter
(``python -I -S _sandbox.py serve CONFIG``) with a clean environment; it never imports
``sandstorm``. The host sends one control message per run over a Unix socket, carrying
file descriptors (status socket, stdin, stdout, stderr). For each run the server forks:

``supervisor`` (host pid namespace, unshares namespaces, reports, kills)
  -> ``init`` (PID 1 of a new pid namespace: fresh /proc, private mounts, lo up,
     then joins the run's cgroups and binds the workspace back through the masks)
     -> ``payload`` (joins its cgroups, binds their read-only view at /sys/fs/cgroup,
        rlimits, Landlock, no_new_privs, seccomp, uid drop, then the code)

Python code runs in-process in the payload (the interpreter is already warm, stdlib and
configured modules pre-imported); other languages are ``execve``'d from the same isolated
payload. When the payload exits, init exits and the kernel kills whatever is left in the
pid namespace (double-forked daemons included). The supervisor reports the exit status
to the host and kills the whole namespace on request or when the host goes away.

With ``prewarm`` the server keeps a few supervisor+init pairs built ahead of time
(namespaces unshared, /proc mounted, masks in place, lo up); a warm run only joins its
cgroups, binds its workspace and forks the payload.

``python -I -S _sandbox.py probe`` tries each primitive in a throwaway child and prints
a JSON report of what works on this machine.
"""

from __future__ import annotations

import atexit
import builtins
import contextlib
import ctypes
import errno
import fcntl
import gc
import io
import json
import os
import resource
import select
import signal
import socket
import struct
import sys
import types
from typing import Any

# --------------------------------------------------------------------------- libc glue

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2

SETUP_FAILED = 125


class SetupError(Exception):
    """An isolation step failed; the code must not run."""


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(err)} (errno {err})")
    return result


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), f"unshare(0x{flags:x})")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    _check(
        _libc.mount(
            source.encode() if source is not None else None,
            target.encode(),
            fstype.encode() if fstype is not None else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {target}",
    )


def prctl(option: int, arg: int, arg3: int = 0) -> None:
    _check(
        _libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg), ctypes.c_ulong(arg3), 0, 0),
        f"prctl({option})",
    )


def lo_up() -> None:
    """Bring the loopback interface of the (new) network namespace up."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        ifreq = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(sock.fileno(), 0x8913, ifreq))[1]
        fcntl.ioctl(sock.fileno(), 0x8914, struct.pack("16sH22x", b"lo", flags | 1))
    except OSError as exc:
        raise SetupError(f"bringing lo up: {exc}") from None
    finally:
        sock.close()


# --------------------------------------------------------------------------- landlock

_SYS_LANDLOCK_CREATE_RULESET = 444
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT_SELF = 446

LL_EXECUTE = 1 << 0
LL_WRITE_FILE = 1 << 1
LL_READ_FILE = 1 << 2
LL_READ_DIR = 1 << 3
LL_REFER = 1 << 13
LL_TRUNCATE = 1 << 14
LL_FILE_RIGHTS = LL_EXECUTE | LL_WRITE_FILE | LL_READ_FILE | LL_TRUNCATE
LL_SCOPE_ABSTRACT_UNIX = 1
LL_SCOPE_SIGNAL = 2


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 when Landlock is unavailable."""
    result = _libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), 1)
    return max(int(result), 0)


def landlock_restrict(spec: dict[str, Any], abi: int) -> None:
    """Confine this process: read-only ``ro`` paths, read-write ``rw`` paths, nothing else.

    With ABI >= 4 and ``deny_tcp`` TCP bind/connect are denied; with ABI >= 6 signals
    and abstract unix sockets are scoped to the sandbox.
    """
    handled = (1 << 13) - 1
    if abi >= 2:
        handled |= LL_REFER
    if abi >= 3:
        handled |= LL_TRUNCATE
    handled_net = 3 if (abi >= 4 and spec.get("deny_tcp")) else 0
    scoped = (LL_SCOPE_ABSTRACT_UNIX | LL_SCOPE_SIGNAL) if abi >= 6 else 0
    if abi >= 6:
        attr = struct.pack("QQQ", handled, handled_net, scoped)
    elif abi >= 4:
        attr = struct.pack("QQ", handled, handled_net)
    else:
        attr = struct.pack("Q", handled)
    buf = ctypes.create_string_buffer(attr, len(attr))
    ruleset = _check(
        _libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, buf, ctypes.c_size_t(len(attr)), 0),
        "landlock_create_ruleset",
    )
    try:
        read_only = LL_EXECUTE | LL_READ_FILE | LL_READ_DIR
        for rights, key in ((read_only, "ro"), (handled, "rw")):
            for path in spec.get(key, []):
                _landlock_add_path(ruleset, str(path), rights & handled)
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        _check(_libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0), "landlock_restrict_self")
    finally:
        os.close(ruleset)


def _landlock_add_path(ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # a path that does not exist grants nothing
    try:
        if not os.path.isdir(path):
            rights &= LL_FILE_RIGHTS
        attr = struct.pack("=Qi", rights, fd)
        buf = ctypes.create_string_buffer(attr, len(attr))
        _check(_libc.syscall(_SYS_LANDLOCK_ADD_RULE, ruleset, 1, buf, 0), f"landlock rule {path}")
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- seccomp

_AUDIT_ARCH_X86_64 = 0xC000003E
_SECCOMP_RET_ALLOW = 0x7FFF0000
_SECCOMP_RET_KILL_PROCESS = 0x80000000
_SECCOMP_RET_ERRNO = 0x00050000
_NS_CLONE_FLAGS = 0x7E020000

# x86_64 syscalls the sandbox never needs: tracing other processes, (un)mounting, new
# namespaces, kernel keyrings, bpf, io_uring, userfaultfd, kexec/modules, clock changes.
_DENIED_SYSCALLS_X86_64 = (
    101,  # ptrace
    103,  # syslog
    134,  # uselib
    153,  # vhangup
    155,  # pivot_root
    159,  # adjtimex
    161,  # chroot
    163,  # acct
    164,  # settimeofday
    165,  # mount
    166,  # umount2
    167,  # swapon
    168,  # swapoff
    169,  # reboot
    172,  # iopl
    173,  # ioperm
    175,  # init_module
    176,  # delete_module
    179,  # quotactl
    227,  # clock_settime
    246,  # kexec_load
    248,  # add_key
    249,  # request_key
    250,  # keyctl
    272,  # unshare
    298,  # perf_event_open
    300,  # fanotify_init
    303,  # name_to_handle_at
    304,  # open_by_handle_at
    305,  # clock_adjtime
    308,  # setns
    310,  # process_vm_readv
    311,  # process_vm_writev
    313,  # finit_module
    320,  # kexec_file_load
    321,  # bpf
    323,  # userfaultfd
    425,  # io_uring_setup
    426,  # io_uring_enter
    427,  # io_uring_register
    428,  # open_tree
    429,  # move_mount
    430,  # fsopen
    431,  # fsconfig
    432,  # fsmount
    433,  # fspick
    438,  # pidfd_getfd
    442,  # mount_setattr
)
_SYS_CLONE = 56
_SYS_CLONE3 = 435


def seccomp_supported() -> bool:
    return os.uname().machine == "x86_64"


def seccomp_program() -> bytes:
    """A classic-BPF seccomp filter (x86_64) denying the syscalls listed above."""

    def stmt(code: int, k: int) -> bytes:
        return struct.pack("HBBI", code, 0, 0, k)

    def jump(code: int, k: int, jt: int, jf: int) -> bytes:
        return struct.pack("HBBI", code, jt, jf, k)

    ld_abs, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    eperm = _SECCOMP_RET_ERRNO | errno.EPERM
    prog = [
        stmt(ld_abs, 4),  # arch
        jump(jeq, _AUDIT_ARCH_X86_64, 1, 0),
        stmt(ret, _SECCOMP_RET_KILL_PROCESS),
        stmt(ld_abs, 0),  # syscall nr
        jump(jge, 0x40000000, 0, 1),  # x32 ABI
        stmt(ret, eperm),
    ]
    for nr in _DENIED_SYSCALLS_X86_64:
        prog += [jump(jeq, nr, 0, 1), stmt(ret, eperm)]
    prog += [jump(jeq, _SYS_CLONE3, 0, 1), stmt(ret, _SECCOMP_RET_ERRNO | errno.ENOSYS)]
    prog += [
        jump(jeq, _SYS_CLONE, 0, 3),
        stmt(ld_abs, 16),  # clone flags (low word of args[0])
        jump(jset, _NS_CLONE_FLAGS, 0, 1),
        stmt(ret, eperm),
        stmt(ret, _SECCOMP_RET_ALLOW),
    ]
    return b"".join(prog)


_SECCOMP_PROG = seccomp_program() if seccomp_supported() else b""


def seccomp_load() -> None:
    if not _SECCOMP_PROG:
        raise SetupError("seccomp filter is only built for x86_64")
    prog = ctypes.create_string_buffer(_SECCOMP_PROG, len(_SECCOMP_PROG))
    fprog = struct.pack("HxxxxxxP", len(_SECCOMP_PROG) // 8, ctypes.addressof(prog))
    fbuf = ctypes.create_string_buffer(fprog, len(fprog))
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    _check(
        _libc.prctl(
            ctypes.c_int(PR_SET_SECCOMP),
            ctypes.c_ulong(SECCOMP_MODE_FILTER),
            ctypes.c_void_p(ctypes.addressof(fbuf)),
            0,
            0,
        ),
        "seccomp filter",
    )


# --------------------------------------------------------------------------- mounts


def setup_mounts(req: dict[str, Any]) -> None:
    """Private propagation, fresh /proc, tmpfs masks with selected paths bound back."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    if req.get("pidns"):
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    keeps: list[tuple[str, int]] = []
    for path in req.get("keeps", []):
        try:
            keeps.append((str(path), os.open(str(path), os.O_PATH | os.O_CLOEXEC)))
        except OSError:
            continue
    base = req.get("workspaces")
    if base:
        try:
            _WORKSPACES_FD[:] = [os.open(str(base), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)]
        except OSError as exc:
            raise SetupError(f"opening the workspaces directory {base!r}: {exc}") from None
    size = int(req.get("tmpfs_bytes", 64 << 20))
    masked = _MASKED
    masked.clear()
    masks = [(str(p), str(mode)) for p, mode in req.get("masks", [])]
    for path, mode in sorted(masks, key=lambda item: len(item[0])):
        if any(_under(path, m) for m in masked) or not os.path.isdir(path):
            continue
        mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, f"mode={mode},size={size}")
        masked.append(path)
    old_umask = os.umask(0o022)
    try:
        for path, fd in keeps:
            if not any(_under(path, m) for m in masked):
                continue
            if os.path.isdir(f"/proc/self/fd/{fd}"):
                os.makedirs(path, mode=0o755, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
                with open(path, "a"):
                    pass
            mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
    finally:
        os.umask(old_umask)
        for _, fd in keeps:
            os.close(fd)


_MASKED: list[str] = []
"""Directories this process covered with a tmpfs (set by :func:`setup_mounts`)."""


_WORKSPACES_FD: list[int] = []
"""The workspaces directory, opened before it was masked (set by :func:`setup_mounts`)."""


def attach_workspace(base: str, path: str) -> None:
    """Show the workspace directory ``path`` (below ``base``) again, through the masks.

    ``path`` is resolved below the descriptor of ``base`` that was opened before masking,
    one component at a time and never following a symlink.
    """
    if not any(_under(path, m) for m in _MASKED):
        return
    if not _WORKSPACES_FD or not _under(path, base) or path == base:
        raise SetupError(f"the workspace {path!r} is not below {base!r}")
    parts = os.path.relpath(path, base).split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise SetupError(f"bad workspace path {path!r}")
    fd = os.dup(_WORKSPACES_FD[0])
    try:
        for part in parts:
            nxt = os.open(
                part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd
            )
            os.close(fd)
            fd = nxt
        old_umask = os.umask(0o022)
        try:
            os.makedirs(path, mode=0o755, exist_ok=True)
        finally:
            os.umask(old_umask)
        mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
    except OSError as exc:
        raise SetupError(f"showing the workspace {path!r}: {exc}") from None
    finally:
        os.close(fd)


CGROUP_VIEW = "/sys/fs/cgroup"
_VIEW_NAMES = frozenset(("", "memory", "cpu", "cpuacct", "pids", "blkio", "unified"))
_VIEW_FLAGS = MS_NOSUID | MS_NODEV | MS_NOEXEC


def mount_cgroup_view(view: list[Any]) -> None:
    """Cover ``/sys/fs/cgroup`` with the run's own cgroup directories, all read-only.

    ``view`` holds ``(name, host directory)`` pairs (see ``CgroupRun.view``): each
    directory is bound at ``/sys/fs/cgroup/<name>`` (``""``: at ``/sys/fs/cgroup``), then
    made read-only, nosuid, nodev, noexec; the tmpfs holding them is made read-only too.
    Only ever inside the sandbox's own mount namespace: refuses anywhere else.
    """
    if not _SERVER_NS.get("mnt") or _ns_id("mnt") == _SERVER_NS["mnt"]:
        raise SetupError("refusing to mount the cgroup view outside the sandbox's mount namespace")
    if not os.path.isdir(CGROUP_VIEW):
        return
    sources: list[tuple[str, int]] = []
    try:
        for entry, source in view:
            name = str(entry)
            if name not in _VIEW_NAMES or any(name == seen for seen, _ in sources):
                raise SetupError(f"bad cgroup view entry {name!r}")
            try:
                fd = os.open(str(source), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError as exc:
                raise SetupError(f"opening the workspace's cgroup {source!r}: {exc}") from None
            sources.append((name, fd))
        if any(name == "" for name, _ in sources) and len(sources) > 1:
            raise SetupError("a cgroup view bound at the root holds nothing else")
        # this namespace's mounts are private already (setup_mounts); say it again here
        mount(None, CGROUP_VIEW, None, MS_REC | MS_PRIVATE)
        if sources and sources[0][0] == "":
            _bind_read_only(sources[0][1], CGROUP_VIEW)
            return
        mount("tmpfs", CGROUP_VIEW, "tmpfs", _VIEW_FLAGS, "mode=0755,size=16k,nr_inodes=64")
        for name, fd in sources:
            target = f"{CGROUP_VIEW}/{name}"
            os.mkdir(target, 0o755)
            _bind_read_only(fd, target)
        mount(None, CGROUP_VIEW, None, MS_REMOUNT | MS_RDONLY | _VIEW_FLAGS)
    finally:
        for _, fd in sources:
            os.close(fd)


def _bind_read_only(fd: int, target: str) -> None:
    mount(f"/proc/self/fd/{fd}", target, None, MS_BIND)
    mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | _VIEW_FLAGS)


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


# --------------------------------------------------------------------------- the payload

_RLIMITS = {
    "cpu": 0,  # RLIMIT_CPU
    "fsize": 1,
    "data": 2,
    "core": 4,
    "nproc": 6,
    "nofile": 7,
    "as": 9,
}


def _drop_privileges(req: dict[str, Any]) -> None:
    uid = req.get("uid")
    gid = req.get("gid")
    if gid is not None:
        os.setgroups([])
        os.setresgid(int(gid), int(gid), int(gid))
    if uid is not None:
        os.setresuid(int(uid), int(uid), int(uid))


def _prepare_payload(req: dict[str, Any], fds: list[int], err_w: int) -> None:
    """Everything between fork and running the code; raises SetupError on any failure."""
    for path in [
        *req.get("cgroups", []),
        *([req["kill_cgroup"]] if req.get("kill_cgroup") else []),
    ]:
        try:
            with open(str(path), "w") as f:
                f.write("0")
        except OSError as exc:
            raise SetupError(f"joining cgroup {path}: {exc}") from None
    view = req.get("cgroup_view")
    if view is not None:
        # after the joins (host paths), before anything drops privileges
        mount_cgroup_view(list(view))
    if req.get("cgroupns"):
        unshare(CLONE_NEWCGROUP)
    stdin_fd, stdout_fd, stderr_fd = fds
    for target, fd in ((0, stdin_fd), (1, stdout_fd), (2, stderr_fd)):
        os.dup2(fd, target)
    os.closerange(3, err_w)
    os.closerange(err_w + 1, 1 << 16)
    os.setsid()
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("0")
    except OSError:
        pass
    for name, limit in dict(req.get("rlimits", {})).items():
        soft, hard = limit
        try:
            resource.setrlimit(_RLIMITS[name], (int(soft), int(hard)))
        except (OSError, ValueError) as exc:
            raise SetupError(f"setrlimit {name}: {exc}") from None
    inner = req.get("inner_uid")
    if inner is not None:
        _drop_to_inner_uid(int(inner))
    landlock = req.get("landlock")
    if landlock:
        landlock_restrict(landlock, int(req.get("landlock_abi", 1)))
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    try:
        _drop_privileges(req)
    except OSError as exc:
        raise SetupError(f"dropping privileges: {exc}") from None
    # the uid change made the process non-dumpable, which hides its own /proc files from
    # it; a freshly started program as that uid is dumpable, so restore that
    prctl(PR_SET_DUMPABLE, 1)
    if req.get("seccomp"):
        seccomp_load()
    try:
        os.chdir(str(req["cwd"]))
    except OSError as exc:
        raise SetupError(f"chdir to the workspace: {exc}") from None
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in dict(req["env"]).items()})


def _out_buffer(fd: int, unbuffered: bool) -> io.RawIOBase | io.BufferedWriter:
    raw = io.FileIO(fd, "w", closefd=False)
    return raw if unbuffered else io.BufferedWriter(raw)


def _run_python(code: str, extra_path: list[str]) -> int:
    """Run ``code`` like ``python -c`` would, in this (forked, warm) interpreter."""
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.stdin = io.TextIOWrapper(
        io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding="utf-8"
    )
    # like `python -u` when PYTHONUNBUFFERED is set (as the provider sets it): output
    # reaches the caller as it is printed, flushed or not
    unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))
    sys.stdout = io.TextIOWrapper(
        _out_buffer(1, unbuffered), encoding="utf-8", write_through=unbuffered
    )
    sys.stderr = io.TextIOWrapper(
        _out_buffer(2, unbuffered),
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,
        write_through=unbuffered,
    )
    for name in ("stdin", "stdout", "stderr"):
        setattr(sys, f"__{name}__", getattr(sys, name))
    sys.argv = ["-c"]
    sys.path[:] = ["", *extra_path]
    main = types.ModuleType("__main__")
    main.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = main
    rc = 0
    try:
        exec(compile(code, "<string>", "exec", dont_inherit=True), main.__dict__)
    except SystemExit as exc:
        rc = _exit_code(exc)
    except KeyboardInterrupt as exc:
        tb = exc.__traceback__.tb_next if exc.__traceback__ else None
        sys.excepthook(type(exc), exc.with_traceback(tb), tb)
        rc = -signal.SIGINT
    except BaseException as exc:
        tb = exc.__traceback__
        if isinstance(exc, SyntaxError) and tb is not None and tb.tb_next is None:
            tb = None
        elif tb is not None:
            tb = tb.tb_next
        sys.excepthook(type(exc), exc.with_traceback(tb), tb)
        rc = 1
    try:
        threading = sys.modules.get("threading")
        if threading is not None:
            threading._shutdown()
        atexit._run_exitfuncs()
    except SystemExit as exc:
        rc = _exit_code(exc)
    except BaseException:
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            rc = 120 if rc == 0 else rc
    return rc


def _exit_code(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    with contextlib.suppress(BaseException):
        print(code, file=sys.stderr)
    return 1


def _payload(req: dict[str, Any], fds: list[int], err_w: int, extra_path: list[str]) -> None:
    try:
        _prepare_payload(req, fds, err_w)
    except BaseException as exc:
        _report_setup_error(err_w, exc)
        os._exit(SETUP_FAILED)
    argv = req.get("argv")
    if argv:
        try:
            code_file = req.get("code_file")
            if code_file:
                fd = os.open(str(code_file), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with open(fd, "w", encoding="utf-8") as f:
                    f.write(str(req["code"]))
            os.execve(str(argv[0]), [str(a) for a in argv], dict(os.environ))
        except OSError as exc:
            _report_setup_error(err_w, SetupError(f"exec {argv[0]}: {exc}"))
            os._exit(SETUP_FAILED)
    os.close(err_w)
    rc = _run_python(str(req["code"]), extra_path)
    if rc < 0:
        signal.signal(-rc, signal.SIG_DFL)
        os.kill(os.getpid(), -rc)
    os._exit(rc)


def _report_setup_error(err_w: int, exc: BaseException) -> None:
    message = str(exc) if isinstance(exc, SetupError) else f"{type(exc).__name__}: {exc}"
    with contextlib.suppress(OSError):
        os.write(err_w, message.encode()[:4000])


_SERVER_NS: dict[str, int] = {}


def _ns_id(kind: str) -> int:
    """The inode that identifies this process's ``kind`` namespace."""
    return os.stat(f"/proc/self/ns/{kind}").st_ino


def _init_static(req: dict[str, Any]) -> None:
    """PID 1, before any request: private mounts, fresh /proc, masks, lo up, hostname."""
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    for kind, wanted in (("mnt", "mountns"), ("net", "netns"), ("uts", "utsns")):
        if req.get(wanted) and _ns_id(kind) == _SERVER_NS.get(kind):
            raise SetupError(f"refusing to change the host's {kind} namespace ({wanted})")
    if req.get("mountns"):
        setup_mounts(req)
    if req.get("netns"):
        lo_up()
    if req.get("utsns"):
        socket.sethostname(str(req.get("hostname", "sandbox")))


def _init_attach(req: dict[str, Any]) -> None:
    """PID 1, for one request: show its workspace through the masks."""
    if req.get("mountns"):
        attach_workspace(str(req.get("workspaces")), str(req["cwd"]))
    for fd in _WORKSPACES_FD:
        os.close(fd)
    _WORKSPACES_FD.clear()


def _init_run(
    req: dict[str, Any],
    fds: list[int],
    err_w: int,
    st_w: int,
    extra: list[str],
    report: socket.socket,
    payload: int | None = None,
) -> None:
    """PID 1: fork the payload (unless ``payload`` runs already), reap, report, exit.

    The status goes to the host directly on ``report`` (one hop sooner than through the
    supervisor) unless the payload ended with the setup-failure code, whose details
    only the supervisor has.
    """
    if payload is None:
        payload = os.fork()
        if payload == 0:
            os.close(st_w)
            report.close()
            _payload(req, fds, err_w, extra)
            os._exit(SETUP_FAILED)
    for fd in fds:
        os.close(fd)
    os.close(err_w)
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(0)
        except InterruptedError:
            continue
        if pid == payload:
            os.write(st_w, str(status).encode())
            if os.waitstatus_to_exitcode(status) != SETUP_FAILED:
                _send_json(report, {"event": "exit", "status": status, "from": "init"})
            os._exit(0)


def _isolate_supervisor(req: dict[str, Any]) -> None:
    """The supervisor's own steps: protected from the OOM killer, then new namespaces."""
    with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as f:
        f.write("-1000")
    if req.get("userns"):
        _enter_userns()
    flags = int(req.get("unshare", 0))
    if flags:
        unshare(flags)


def _watch(init: int, status_sock: socket.socket, err_r: int, st_r: int) -> None:
    """Wait for init to end (killing it when the host asks or goes away), then report."""
    pidfd = os.pidfd_open(init)
    killed = False
    watch: list[Any] = [status_sock, pidfd]
    while True:
        ready, _, _ = select.select(watch, [], [])
        if pidfd in ready:
            break
        try:
            data = status_sock.recv(64)
        except OSError:
            data = b""
        if not killed and (not data or b"k" in data):
            os.kill(init, signal.SIGKILL)
            killed = True
        if not data:
            watch = [pidfd]
    _, init_status = os.waitpid(init, 0)
    setup_error = _read_all(err_r).decode(errors="replace")
    payload_status = _read_all(st_r).decode()
    _send_json(
        status_sock,
        {
            "event": "exit",
            "init_status": init_status,
            "status": int(payload_status) if payload_status else None,
            "setup_error": setup_error or None,
            "killed": killed,
        },
    )
    os._exit(0)


def supervise(fds: list[int], extra: list[str]) -> None:
    """A cold run: read the request, isolate, fork init, report status; kill on request."""
    status_sock = socket.socket(fileno=fds[0])
    io_fds = fds[1:4]
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.setsid()
    req = _recv_json(status_sock)
    err_r, err_w = os.pipe()
    st_r, st_w = os.pipe()
    try:
        _isolate_supervisor(req)
    except BaseException as exc:
        _send_json(status_sock, {"event": "exit", "setup_error": str(exc)})
        os._exit(0)
    init = os.fork()
    if init == 0:
        os.close(err_r)
        os.close(st_r)
        try:
            _init_static(req)
            _init_attach(req)
        except BaseException as exc:
            _report_setup_error(err_w, exc)
            os._exit(SETUP_FAILED)
        _init_run(req, io_fds, err_w, st_w, extra, status_sock)
        os._exit(SETUP_FAILED)
    for fd in (*io_fds, err_w, st_w):
        os.close(fd)
    _watch(init, status_sock, err_r, st_r)


def warm_supervisor(static: dict[str, Any], requests: socket.socket, extra: list[str]) -> None:
    """A pre-built sandbox: namespaces and mounts ready before the request arrives.

    Init waits on ``requests`` for one run's descriptors (sent by the server), reads the
    request, hands the status socket back to this supervisor, and goes on exactly like a
    cold run. Everything here dies with the server.
    """
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.setsid()
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    try:
        _isolate_supervisor(static)
    except BaseException:
        os._exit(0)
    err_r, err_w = os.pipe()
    st_r, st_w = os.pipe()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    init = os.fork()
    if init == 0:
        ours.close()
        os.close(err_r)
        os.close(st_r)
        try:
            _init_static(static)
        except BaseException:
            os._exit(SETUP_FAILED)
        to_payload, from_init = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        payload = os.fork()
        if payload == 0:
            # the payload, forked ahead of time: waits for its request from init
            for sock in (requests, theirs, to_payload):
                sock.close()
            os.close(st_w)
            try:
                msg, fds, _, _ = socket.recv_fds(from_init, 1, 3)
                req = _recv_json(from_init) if msg and len(fds) == 3 else None
            except (OSError, SetupError):
                req = None
            if req is None:
                os._exit(0)
            from_init.close()
            _payload(req, fds, err_w, extra)
            os._exit(SETUP_FAILED)
        from_init.close()
        try:
            msg, fds, _, _ = socket.recv_fds(requests, 16, 8)
        except OSError:
            os._exit(0)
        requests.close()
        if not msg or len(fds) != 4:
            os._exit(0)
        status_sock = socket.socket(fileno=fds[0])
        try:
            raw = _recv_exact(status_sock, 8)
            body = _recv_exact(status_sock, struct.unpack("!Q", raw)[0])
            req = json.loads(body)
            socket.send_fds(theirs, [b"S"], [status_sock.fileno()])
            theirs.close()
            _init_attach(req)
            socket.send_fds(to_payload, [b"R"], fds[1:4])
            to_payload.sendall(raw + body)
            to_payload.close()
        except BaseException as exc:
            _report_setup_error(err_w, exc)
            os._exit(SETUP_FAILED)
        _init_run(req, fds[1:4], err_w, st_w, extra, status_sock, payload)
        os._exit(SETUP_FAILED)
    requests.close()
    theirs.close()
    os.close(err_w)
    os.close(st_w)
    try:
        msg, fds, _, _ = socket.recv_fds(ours, 16, 1)
    except OSError:
        msg, fds = b"", []
    if not fds:
        with contextlib.suppress(OSError):
            os.kill(init, signal.SIGKILL)
        os._exit(0)
    _watch(init, socket.socket(fileno=fds[0]), err_r, st_r)


def _drop_to_inner_uid(inner: int) -> None:
    """Rootless mode: leave the namespace's root for ``inner`` in a nested user namespace.

    The outer user namespace maps its uid 0 to the (unprivileged) host user; a nested one
    maps ``inner`` to that uid 0, and switching to it drops every capability.
    """
    unshare(CLONE_NEWUSER)
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"{inner} 0 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"{inner} 0 1")
    os.setresgid(inner, inner, inner)
    os.setresuid(inner, inner, inner)


def _enter_userns() -> None:
    uid, gid = os.getuid(), os.getgid()
    unshare(CLONE_NEWUSER)
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"0 {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"0 {gid} 1")


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def _recv_json(sock: socket.socket) -> dict[str, Any]:
    header = _recv_exact(sock, 8)
    (size,) = struct.unpack("!Q", header)
    request: dict[str, Any] = json.loads(_recv_exact(sock, size))
    return request


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    buf = bytearray()
    while len(buf) < size:
        chunk = sock.recv(min(size - len(buf), 1 << 20))
        if not chunk:
            raise SetupError("the host closed the request channel")
        buf += chunk
    return bytes(buf)


def _send_json(sock: socket.socket, obj: object) -> None:
    data = json.dumps(obj).encode()
    with contextlib.suppress(OSError):
        sock.sendall(struct.pack("!Q", len(data)) + data)


# --------------------------------------------------------------------------- server & probe


def serve(ctrl_fd: int, config: dict[str, Any]) -> None:
    """The fork-server loop: one control message (with fds) per run, until EOF."""
    extra = [str(p) for p in config.get("python_path", [])]
    for path in reversed(extra):
        if path not in sys.path:
            sys.path.append(path)
    for name in config.get("preload", []):
        try:
            __import__(str(name))
        except Exception as exc:
            print(f"sandstorm fork server: cannot preload {name}: {exc}", file=sys.stderr)
    base_path = list(sys.path)
    # objects that exist now are never collected in a child: keeping the collector away
    # from them keeps their pages shared (copy-on-write) and makes each fork cheaper
    gc.collect()
    gc.freeze()
    for kind in ("mnt", "net", "uts"):
        _SERVER_NS[kind] = _ns_id(kind)
    ctrl = socket.socket(fileno=ctrl_fd)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    static: dict[str, Any] = config.get("prewarm") or {}
    count = int(config.get("prewarm_count", 0)) if static else 0
    pool: list[socket.socket] = []

    def spawn_warm() -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        if os.fork() == 0:
            try:
                ctrl.close()
                ours.close()
                for other in pool:
                    other.close()
                warm_supervisor(static, theirs, base_path)
            finally:
                os._exit(1)
        theirs.close()
        pool.append(ours)

    for _ in range(count):
        spawn_warm()
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(ctrl, 16, 8)
        except InterruptedError:
            continue
        except OSError:
            break
        if not msg:
            break
        if len(fds) != 4:
            for fd in fds:
                os.close(fd)
            continue
        handed = False
        while msg == b"W" and pool and not handed:
            warm = pool.pop(0)
            try:
                socket.send_fds(warm, [b"R"], fds)
                handed = True
            except OSError:
                pass  # that sandbox died; try the next one
            warm.close()
        if not handed and os.fork() == 0:
            try:
                ctrl.close()
                for other in pool:
                    other.close()
                supervise(fds, base_path)
            finally:
                os._exit(1)
        for fd in fds:
            os.close(fd)
        while msg == b"W" and len(pool) < count:
            spawn_warm()
    os._exit(0)


def _try(fn: Any) -> str | None:
    """Run ``fn`` in a forked child; None on success, else the error message."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            fn()
        except BaseException as exc:
            os.write(w, (str(exc) or type(exc).__name__).encode()[:2000])
            os._exit(1)
        os._exit(0)
    os.close(w)
    message = _read_all(r).decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) == 0 and not message:
        return None
    return message or f"probe child ended with status {status}"


def probe(config: dict[str, Any]) -> dict[str, Any]:
    """Which isolation primitives work here, each tried in a throwaway child."""
    rootless = os.getuid() != 0

    def ns(flag: int) -> Any:
        def attempt() -> None:
            if rootless:
                _enter_userns()
            unshare(flag)

        return attempt

    def pidns() -> None:
        if rootless:
            _enter_userns()
        unshare(CLONE_NEWPID | CLONE_NEWNS)
        child = os.fork()
        if child == 0:
            try:
                mount(None, "/", None, MS_REC | MS_PRIVATE)
                mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
                pids = [p for p in os.listdir("/proc") if p.isdigit()]
                if pids != ["1"]:
                    raise SetupError(f"fresh /proc shows {pids}")
            except BaseException as exc:
                print(exc, file=sys.stderr)
                os._exit(1)
            os._exit(0)
        _, status = os.waitpid(child, 0)
        if status != 0:
            raise SetupError("mounting a fresh /proc in a new pid namespace failed")

    def netns_lo() -> None:
        ns(CLONE_NEWNET)()
        lo_up()

    def mask() -> None:
        ns(CLONE_NEWNS)()
        mount(None, "/", None, MS_REC | MS_PRIVATE)
        mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")

    def uid_drop() -> None:
        if rootless:
            return
        uid = int(config.get("uid", 65534))
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        try:
            os.setuid(0)
        except PermissionError:
            return
        raise SetupError("uid drop could be reversed")

    def landlock() -> None:
        abi = landlock_abi()
        if abi < 1:
            raise SetupError("the kernel has no Landlock (landlock_create_ruleset failed)")
        landlock_restrict({"ro": ["/usr"], "rw": []}, abi)
        try:
            os.listdir("/etc")
        except PermissionError:
            return
        raise SetupError("Landlock ruleset loaded but did not restrict reads")

    report: dict[str, Any] = {
        "uid": os.getuid(),
        "rootless": rootless,
        "landlock_abi": landlock_abi(),
        "seccomp_arch": seccomp_supported(),
    }
    checks = {
        "userns": ns(0) if rootless else None,
        "netns": netns_lo,
        "pidns": pidns,
        "mountns": mask,
        "ipcns": ns(CLONE_NEWIPC),
        "utsns": ns(CLONE_NEWUTS),
        "cgroupns": ns(CLONE_NEWCGROUP),
        "uid_drop": None if rootless else uid_drop,
        "landlock": landlock,
        "seccomp": seccomp_load,
    }
    errors: dict[str, str] = {}
    for name, fn in checks.items():
        if fn is None:
            continue
        error = _try(fn)
        report[name] = error is None
        if error is not None:
            errors[name] = error
    report["errors"] = errors
    return report


def main(argv: list[str]) -> int:
    mode = argv[1] if len(argv) > 1 else ""
    config = json.loads(argv[2]) if len(argv) > 2 else {}
    if mode == "serve":
        serve(int(config["ctrl_fd"]), config)
        return 0
    if mode == "probe":
        print(json.dumps(probe(config)))
        return 0
    print("usage: _sandbox.py serve|probe CONFIG_JSON", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))

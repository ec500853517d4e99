"""The isolation engine: a stdlib-only fork server that runs each request in a fresh sandbox.

This file is executed as a script by a separate, pre-started interpreter
(``python -I -S _forkserver.py serve CONFIG``) with a clean environment; it never imports
``sandstorm`` (the provider imports it, for :class:`RunRequest` and :class:`SandboxSpec`,
the one typed definition of what the host sends). The host sends one control message per
run over a Unix socket, carrying file descriptors (status socket, stdin, stdout, stderr),
then the request. For each run the server forks:

``init`` (PID 1 of a new pid namespace, not dumpable: assembles a new root from the
  spec's allow-list, lo up; per run names the user, binds the workspace and the cgroup
  view, ``pivot_root`` and the host's root is detached; reports the exit status to the
  host and kills the whole namespace on request or when the host goes away)
  -> ``payload`` (joins its cgroups, rlimits, Landlock, no_new_privs, the workspace's
     uid, seccomp, then the code)

On a root host the server forks init straight into its new pid namespace
(:func:`fork_init`, then :func:`warm_init` or :func:`cold_init`). Where a pid namespace
needs a user namespace first (rootless), a ``supervisor`` in the host's pid namespace
comes before init: it makes the namespaces, forks init, and does the reporting and
killing instead (:func:`warm_supervisor`, :func:`supervise`).

Python code runs in-process in the payload (the interpreter is already warm, stdlib and
configured modules pre-imported); other languages are ``execve``'d from the same isolated
payload. When the payload exits, init exits and the kernel kills whatever is left in the
pid namespace (double-forked daemons included).

With ``prewarm`` the server keeps a few sandboxes built ahead of time (namespaces
unshared, the root assembled, lo up); a warm run only names its user, binds its
workspace and cgroup view, switches root and forks nothing (its payload waits ready, and
joins the run's cgroups while init does all that). The pool is built back up when the
host says a warm run is over (``F``), or at once when a run found it empty: building a
sandbox beside a run takes the CPU the run needs (2.5 ms of a 9 ms run on 2 cores).

``python -I -S _forkserver.py probe`` tries each primitive in a throwaway child and prints
a JSON report of what works on this machine.
"""

from __future__ import annotations

import atexit
import builtins
import contextlib
import ctypes
import dataclasses
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
from typing import Any, BinaryIO, NoReturn, TextIO, TypeVar

# --------------------------------------------------------------------------- the request

# One definition of what the host sends, shared by both sides: the provider builds these
# (``from ._forkserver import RunRequest``), this program decodes them. Unknown or missing
# keys are an error on both sides (a dataclass refuses them when built; ``decode`` when
# read), so a misspelled key can never switch a layer off silently.


@dataclasses.dataclass(frozen=True)
class LandlockSpec:
    """Landlock rules: read-only ``ro`` paths, read-write ``rw`` paths (inside the sandbox)."""

    ro: tuple[str, ...]
    rw: tuple[str, ...]
    deny_tcp: bool


@dataclasses.dataclass(frozen=True)
class SandboxSpec:
    """How a sandbox is built: the same for every run of a provider and network mode.

    Pre-built (warm) sandboxes are made from exactly this; a run whose spec differs gets a
    cold one. Paths in ``binds``, ``devices`` and ``cgroup_bases`` are the host's, the
    others are inside the sandbox.
    """

    unshare: int
    userns: bool
    pidns: bool
    mountns: bool
    netns: bool
    utsns: bool
    hostname: str
    binds: tuple[str, ...]
    """Host paths bound read-only, nosuid, nodev at the same path in the new root."""
    links: tuple[tuple[str, str], ...]
    """Symlinks ``(path, target)`` created in the new root (``/bin -> usr/bin``)."""
    etc: tuple[tuple[str, str], ...]
    """Files ``(name, content)`` written to the synthetic ``/etc``."""
    devices: tuple[str, ...]
    """Host device nodes bound at the same path under the new ``/dev``."""
    tmpfs_bytes: int
    workspaces: str
    """The host directory holding every workspace (opened before the host view goes)."""
    workspace_path: str
    """Where the workspace appears inside (``/workspace`` by default)."""
    cgroup_bases: tuple[str, ...]
    """The provider's host cgroup directories; a run's cgroups are found below them."""
    shell: str


@dataclasses.dataclass(frozen=True)
class RunRequest:
    """One run: its sandbox, its code and everything that differs from run to run."""

    sandbox: SandboxSpec
    code: str
    argv: tuple[str, ...] | None
    code_file: str | None
    env: dict[str, str]
    workspace: str
    """The host path of the workspace's files (below ``sandbox.workspaces``)."""
    cwd: str
    """The working directory inside (``sandbox.workspace_path`` with a mount namespace)."""
    cgroupns: bool
    uid: int | None
    gid: int | None
    inner_uid: int | None
    rlimits: dict[str, tuple[int, int]]
    landlock: LandlockSpec | None
    landlock_abi: int
    seccomp: bool
    cgroups: tuple[str, ...]
    kill_cgroup: str | None
    cgroup_view: tuple[tuple[str, str], ...] | None

    def encode(self) -> bytes:
        """The request as sent to the fork server (JSON).

        The sandbox spec is the same object for every run of a provider and network
        mode: its JSON is made once (see :func:`_spec_json`) and spliced in.
        """
        rest = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "sandbox"
        }
        if self.landlock is not None:
            rest["landlock"] = dataclasses.asdict(self.landlock)
        return _SPEC_KEY + _spec_json(self.sandbox) + b", " + json.dumps(rest)[1:].encode()


_SPEC_JSON: dict[int, tuple[SandboxSpec, bytes]] = {}


def _spec_json(spec: SandboxSpec) -> bytes:
    """``spec`` as JSON, cached by identity (specs are frozen and kept by their provider)."""
    cached = _SPEC_JSON.get(id(spec))
    if cached is None or cached[0] is not spec:
        if len(_SPEC_JSON) >= 64:
            _SPEC_JSON.clear()
        cached = _SPEC_JSON[id(spec)] = (spec, spec_json(spec))
    return cached[1]


_NESTED: dict[str, type[Any]] = {"sandbox": SandboxSpec, "landlock": LandlockSpec}
_T = TypeVar("_T")


def _tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuples(item) for item in value)
    if isinstance(value, dict):
        return {str(key): _tuples(item) for key, item in value.items()}
    return value


def decode(cls: type[_T], data: Any) -> _T:
    """Rebuild ``cls`` (a request dataclass) from decoded JSON; refuse any other key set."""
    if not isinstance(data, dict):
        raise SetupError(f"{cls.__name__}: expected an object, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown, missing = sorted(set(data) - names), sorted(names - set(data))
    if unknown or missing:
        raise SetupError(f"{cls.__name__}: unknown keys {unknown}, missing keys {missing}")
    values = {}
    for name, value in data.items():
        nested = _NESTED.get(name)
        values[name] = decode(nested, value) if nested and value is not None else _tuples(value)
    return cls(**values)


_SPEC_KEY = b'{"sandbox": '


def spec_json(spec: SandboxSpec) -> bytes:
    """``spec`` as :meth:`RunRequest.encode` writes it (the same bytes for an equal spec)."""
    return json.dumps(dataclasses.asdict(spec)).encode()


def decode_request(body: bytes, known: tuple[SandboxSpec, bytes] | None = None) -> RunRequest:
    """A request from its JSON (see :meth:`RunRequest.encode`).

    With ``known`` (a pre-built sandbox's spec and its :func:`spec_json`), a request whose
    spec is byte for byte that one is read without decoding the spec again: a sandbox's
    processes are forks of one warm interpreter, and every object decoding makes is a
    copied page. Any other request is decoded in full.
    """
    if known is not None:
        spec, raw = known
        head = _SPEC_KEY + raw + b", "
        if body.startswith(head):
            data = json.loads(b"{" + body[len(head) :])
            if isinstance(data, dict) and "sandbox" not in data:
                return dataclasses.replace(
                    decode(RunRequest, {**data, "sandbox": None}), sandbox=spec
                )
    return decode(RunRequest, json.loads(body))


# --------------------------------------------------------------------------- libc glue

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.setvbuf.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_size_t]
_libc.fflush.argtypes = [ctypes.c_void_p]
_IONBF = 2
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
MS_SLAVE = 1 << 19

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


_pylibc = ctypes.PyDLL(None, use_errno=True)
"""libc called with the GIL held (for :func:`fork_helper`)."""


def fork_helper() -> int:
    """``fork()`` for the sandbox's own helpers (supervisor, init): without Python's hooks.

    ``os.fork`` runs the interpreter's after-fork work in the child, and the hooks the
    preloaded modules registered (``threading`` and ``random`` re-initialise their state):
    in a fork of the warm interpreter that touches, and so copies, hundreds of pages.
    The helpers start no thread, draw no random number and import nothing, and this
    server has a single thread, so they skip it. The code's own process (the payload) is
    always forked with ``os.fork``: it gets fresh random state and consistent threading.
    """
    pid = int(_pylibc.fork())
    if pid < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"fork: {os.strerror(err)}")
    return pid


_OWN_PID_NS: list[int] = []
"""The server's own pid namespace (opened by :func:`serve`), to return to after a fork."""


def fork_init() -> int:
    """:func:`fork_helper` into a new pid namespace: the child is its PID 1.

    Only the server calls this (it needs the right to make a pid namespace without a new
    user namespace, i.e. a root host): the pid namespace is chosen for the next child,
    the child forked, and the server's own namespace chosen again at once.
    """
    if not _OWN_PID_NS:
        raise SetupError("the server's pid namespace is not known")
    unshare(CLONE_NEWPID)
    try:
        pid = fork_helper()
    except BaseException:
        _check(_libc.setns(_OWN_PID_NS[0], CLONE_NEWPID), "setns(pid)")
        raise
    if pid == 0:
        return 0
    _check(_libc.setns(_OWN_PID_NS[0], CLONE_NEWPID), "setns(pid)")
    return pid


def _can_fork_init() -> bool:
    """True when this process may choose a new pid namespace for its children (and go back
    to its own): tried once, before any sandbox is forked; without it, supervisors."""
    if not _OWN_PID_NS:
        return False
    try:
        unshare(CLONE_NEWPID)
    except SetupError:
        return False
    # it chose one: it must be able to go back, or every later child would land there
    _check(_libc.setns(_OWN_PID_NS[0], CLONE_NEWPID), "setns(pid)")
    return True


def _close_own_pid_ns() -> None:
    """In a child of the server: nothing of the host's pid namespace stays open inside."""
    while _OWN_PID_NS:
        os.close(_OWN_PID_NS.pop())


def write_file(path: str, text: str, *, append: bool = False) -> None:
    """Create or overwrite (``append``: only create) ``path`` with ``text`` in one ``write``.

    The sandbox's processes are forks of one warm interpreter: plain descriptors instead of
    a text stream touch fewer of its objects, so fewer pages are copied per process.
    """
    mode = os.O_APPEND if append else os.O_TRUNC
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | mode, 0o666)
    try:
        if text:
            os.write(fd, text.encode())
    finally:
        os.close(fd)


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


def landlock_restrict(spec: LandlockSpec, abi: int) -> None:
    """Confine this process: read-only ``ro`` paths, read-write ``rw`` paths, nothing else.

    With ABI >= 4 and ``deny_tcp`` TCP bind/connect are denied; with ABI >= 6 signals
    and abstract unix sockets are scoped to the sandbox.
    """
    handled = (1 << 13) - 1
    if abi >= 2:
        handled |= LL_REFER
    if abi >= 3:
        handled |= LL_TRUNCATE
    handled_net = 3 if (abi >= 4 and spec.deny_tcp) else 0
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
        for rights, paths in ((read_only, spec.ro), (handled, spec.rw)):
            for path in paths:
                _landlock_add_path(ruleset, path, rights & handled)
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

_SECCOMP_RET_ALLOW = 0x7FFF0000
_SECCOMP_RET_KILL_PROCESS = 0x80000000
_SECCOMP_RET_ERRNO = 0x00050000
_NS_CLONE_FLAGS = 0x7E020000

# Syscalls the sandbox never needs: tracing other processes, (un)mounting, new namespaces,
# kernel keyrings, bpf, io_uring, userfaultfd, kexec/modules, clock changes.
_DENIED = [
    "ptrace",
    "syslog",
    "uselib",
    "vhangup",
    "pivot_root",
    "adjtimex",
    "chroot",
    "acct",
    "settimeofday",
    "mount",
    "umount2",
    "swapon",
    "swapoff",
    "reboot",
    "iopl",
    "ioperm",
    "init_module",
    "delete_module",
    "quotactl",
    "clock_settime",
    "kexec_load",
    "add_key",
    "request_key",
    "keyctl",
    "unshare",
    "perf_event_open",
    "fanotify_init",
    "name_to_handle_at",
    "open_by_handle_at",
    "clock_adjtime",
    "setns",
    "process_vm_readv",
    "process_vm_writev",
    "finit_module",
    "kexec_file_load",
    "bpf",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "pidfd_getfd",
    "mount_setattr",
]

_SYSCALLS: dict[str, tuple[int, dict[str, int]]] = {
    # machine: (AUDIT_ARCH_*, syscall numbers); a name missing from an arch has no syscall
    "x86_64": (
        0xC000003E,
        {
            "ptrace": 101, "syslog": 103, "uselib": 134, "vhangup": 153, "pivot_root": 155,
            "adjtimex": 159, "chroot": 161, "acct": 163, "settimeofday": 164, "mount": 165,
            "umount2": 166, "swapon": 167, "swapoff": 168, "reboot": 169, "iopl": 172,
            "ioperm": 173, "init_module": 175, "delete_module": 176, "quotactl": 179,
            "clock_settime": 227, "kexec_load": 246, "add_key": 248, "request_key": 249,
            "keyctl": 250, "unshare": 272, "perf_event_open": 298, "fanotify_init": 300,
            "name_to_handle_at": 303, "open_by_handle_at": 304, "clock_adjtime": 305,
            "setns": 308, "process_vm_readv": 310, "process_vm_writev": 311,
            "finit_module": 313, "kexec_file_load": 320, "bpf": 321, "userfaultfd": 323,
            "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
            "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431,
            "fsmount": 432, "fspick": 433, "pidfd_getfd": 438, "mount_setattr": 442,
            "clone": 56, "clone3": 435, "socket": 41, "socketpair": 53,
        },
    ),
    "aarch64": (
        0xC00000B7,
        {
            "ptrace": 117, "syslog": 116, "vhangup": 58, "pivot_root": 41, "adjtimex": 171,
            "chroot": 51, "acct": 89, "settimeofday": 170, "mount": 40, "umount2": 39,
            "swapon": 224, "swapoff": 225, "reboot": 142, "init_module": 105,
            "delete_module": 106, "quotactl": 60, "clock_settime": 112, "kexec_load": 104,
            "add_key": 217, "request_key": 218, "keyctl": 219, "unshare": 97,
            "perf_event_open": 241, "fanotify_init": 262, "name_to_handle_at": 264,
            "open_by_handle_at": 265, "clock_adjtime": 266, "setns": 268,
            "process_vm_readv": 270, "process_vm_writev": 271, "finit_module": 273,
            "kexec_file_load": 294, "bpf": 280, "userfaultfd": 282, "io_uring_setup": 425,
            "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428,
            "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
            "pidfd_getfd": 438, "mount_setattr": 442,
            "clone": 220, "clone3": 435, "socket": 198, "socketpair": 199,
        },
    ),
}  # fmt: skip

AF_UNIX, AF_INET, AF_INET6, AF_NETLINK = 1, 2, 10, 16
NETLINK_ROUTE = 0
SOCKET_FAMILIES = (AF_UNIX, AF_INET, AF_INET6)
"""Socket families the code may create; AF_NETLINK only with protocol NETLINK_ROUTE."""


def syscall_number(name: str, machine: str | None = None) -> int | None:
    """The number of syscall ``name`` on ``machine`` (this one by default), None if unknown."""
    table = _SYSCALLS.get(machine or os.uname().machine)
    return table[1].get(name) if table else None


def seccomp_supported() -> bool:
    return os.uname().machine in _SYSCALLS


def seccomp_program(machine: str) -> bytes:
    """A classic-BPF seccomp filter for ``machine`` (x86_64 or aarch64).

    A syscall made with any other architecture's convention kills the process; the
    denied syscalls fail with EPERM; ``clone3`` with ENOSYS (so libc falls back to
    ``clone``, whose namespace flags are then checked); ``socket`` and ``socketpair``
    outside the allowed families fail with EAFNOSUPPORT.
    """
    if machine not in _SYSCALLS:
        raise SetupError(f"no seccomp filter for {machine} (only {', '.join(sorted(_SYSCALLS))})")
    arch, numbers = _SYSCALLS[machine]

    def stmt(code: int, k: int) -> bytes:
        return struct.pack("HBBI", code, 0, 0, k)

    def jump(code: int, k: int, jt: int, jf: int) -> bytes:
        return struct.pack("HBBI", code, jt, jf, k)

    ld_abs, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    eperm = _SECCOMP_RET_ERRNO | errno.EPERM
    no_family = _SECCOMP_RET_ERRNO | errno.EAFNOSUPPORT
    allow = stmt(ret, _SECCOMP_RET_ALLOW)
    prog = [
        stmt(ld_abs, 4),  # seccomp_data.arch
        jump(jeq, arch, 1, 0),
        stmt(ret, _SECCOMP_RET_KILL_PROCESS),
        stmt(ld_abs, 0),  # seccomp_data.nr
    ]
    if machine == "x86_64":
        prog += [jump(jge, 0x40000000, 0, 1), stmt(ret, eperm)]  # the x32 ABI
    for name in _DENIED:
        if name in numbers:
            prog += [jump(jeq, numbers[name], 0, 1), stmt(ret, eperm)]
    prog += [jump(jeq, numbers["clone3"], 0, 1), stmt(ret, _SECCOMP_RET_ERRNO | errno.ENOSYS)]
    prog += [
        jump(jeq, numbers["clone"], 0, 4),
        stmt(ld_abs, 16),  # clone flags (low word of args[0])
        jump(jset, _NS_CLONE_FLAGS, 0, 1),
        stmt(ret, eperm),
        allow,
    ]
    # socket(domain, type, protocol): domain is args[0] (offset 16), protocol args[2] (32)
    families = [jump(jeq, family, len(SOCKET_FAMILIES) - i + 3, 0)
                for i, family in enumerate(SOCKET_FAMILIES)]  # fmt: skip
    prog += [
        jump(jeq, numbers["socket"], 0, len(families) + 7),
        stmt(ld_abs, 16),
        *families,
        jump(jeq, AF_NETLINK, 0, 4),
        stmt(ld_abs, 32),
        jump(jeq, NETLINK_ROUTE, 1, 0),
        stmt(ret, no_family),
        allow,
        stmt(ret, no_family),
    ]
    prog += [
        jump(jeq, numbers["socketpair"], 0, 4),
        stmt(ld_abs, 16),
        jump(jeq, AF_UNIX, 0, 1),
        allow,
        stmt(ret, no_family),
    ]
    prog.append(allow)
    return b"".join(prog)


_SECCOMP_PROG = seccomp_program(os.uname().machine) if seccomp_supported() else b""


def seccomp_load() -> None:
    if not _SECCOMP_PROG:
        raise SetupError(f"no seccomp filter for {os.uname().machine} (only x86_64 and aarch64)")
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


_SYS_PIVOT_ROOT = syscall_number("pivot_root")
MNT_DETACH = 2
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_RELATIME = 1 << 21
_READ_ONLY = MS_RDONLY | MS_NOSUID | MS_NODEV
_ST_LOCKED = (
    (os.ST_RDONLY, MS_RDONLY),
    (os.ST_NOSUID, MS_NOSUID),
    (os.ST_NODEV, MS_NODEV),
    (os.ST_NOEXEC, MS_NOEXEC),
    (os.ST_NOATIME, MS_NOATIME),
    (os.ST_NODIRATIME, MS_NODIRATIME),
    (os.ST_RELATIME, MS_RELATIME),
)
_STAGE = "/tmp"
"""Where the new root is assembled (in the sandbox's own mount namespace) before pivot_root."""

_WORKSPACES_FD: list[int] = []
"""The host's workspaces directory, opened before the host view went away."""
_CGROUP_FDS: dict[str, int] = {}
"""The provider's host cgroup directories (``SandboxSpec.cgroup_bases``), opened likewise."""


def _bind(fd: int, target: str, flags: int) -> None:
    """Bind what ``fd`` names at ``target`` with mount ``flags`` (plus the source's locked ones).

    In a user namespace a bind must keep the flags its source mount has (read-only,
    nosuid, atime...): they are read from the source and kept.
    """
    source = f"/proc/self/fd/{fd}"
    mount(source, target, None, MS_BIND)
    kept = 0
    with contextlib.suppress(OSError):
        st_flags = os.statvfs(source).f_flag
        kept = sum(ms for st, ms in _ST_LOCKED if st_flags & st)
    mount(None, target, None, MS_BIND | MS_REMOUNT | flags | kept)


def _open_path(path: str) -> int | None:
    try:
        return os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return None


def _make_target(target: str, fd: int) -> None:
    if os.path.isdir(f"/proc/self/fd/{fd}"):
        os.makedirs(target, mode=0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        write_file(target, "", append=True)


def build_root(spec: SandboxSpec) -> None:
    """Assemble the sandbox's filesystem from ``spec``, staged (:func:`attach` switches to it).

    A tmpfs root holding: read-only, nosuid, nodev binds of ``spec.binds`` (at the same
    paths), the ``spec.links`` symlinks, a synthetic ``/etc`` (``spec.etc``), a minimal
    ``/dev`` (``spec.devices`` bound, ``fd``/``stdin``/``stdout``/``stderr`` links, a
    private ``/dev/shm``), a fresh ``/proc``, a private ``/tmp``, an empty
    ``/sys/fs/cgroup`` and the mount point of the workspace, staged at ``/tmp`` of this
    mount namespace; :func:`attach` finishes it for one run and makes it the root. The
    workspaces directory and the cgroup directories are opened first and kept (by
    descriptor only) for :func:`attach` and the payload's cgroup joins.
    """
    try:
        _WORKSPACES_FD[:] = [os.open(spec.workspaces, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)]
    except OSError as exc:
        raise SetupError(f"opening the workspaces directory {spec.workspaces!r}: {exc}") from None
    for base in spec.cgroup_bases:
        try:
            _CGROUP_FDS[base] = os.open(base, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise SetupError(f"opening the cgroup directory {base!r}: {exc}") from None
    binds = [(path, _open_path(path)) for path in sorted(spec.binds)]
    devices = [(path, _open_path(path)) for path in spec.devices]
    root = _STAGE
    small = "mode=0755,size=1m,nr_inodes=4096"
    scratch = f"mode=1777,size={spec.tmpfs_bytes}"
    old_umask = os.umask(0o022)
    try:
        mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, small)
        for name, fstype, flags, data in (
            ("etc", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, small),
            ("dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k,nr_inodes=64"),
            ("dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, scratch),
            ("tmp", "tmpfs", MS_NOSUID | MS_NODEV, scratch),
            ("proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, ""),
        ):
            os.makedirs(f"{root}/{name}", mode=0o755, exist_ok=True)
            mount(fstype, f"{root}/{name}", fstype, flags, data)
        for name, content in spec.etc:
            write_file(f"{root}/etc/{name}", content)
        for path, fd in devices:
            if fd is not None:
                write_file(root + path, "", append=True)
                # a device node needs no further flags (nothing to execute or set-uid)
                mount(f"/proc/self/fd/{fd}", root + path, None, MS_BIND)
        for name, target in (
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ):
            os.symlink(target, f"{root}/dev/{name}")
        for path, fd in binds:
            if fd is not None:
                _make_target(root + path, fd)
                _bind(fd, root + path, _READ_ONLY)
        for path, target in spec.links:
            os.makedirs(os.path.dirname(root + path), mode=0o755, exist_ok=True)
            os.symlink(target, root + path)
        os.makedirs(root + CGROUP_VIEW, mode=0o755, exist_ok=True)
        os.makedirs(root + spec.workspace_path, mode=0o755, exist_ok=True)
        # what is bound so far receives nothing more from the host
        mount(None, root, None, MS_REC | MS_PRIVATE)
    except OSError as exc:
        raise SetupError(f"assembling the sandbox's root: {exc}") from None
    finally:
        os.umask(old_umask)
        for _, fd in (*binds, *devices):
            if fd is not None:
                os.close(fd)


def _pivot(root: str) -> None:
    """Make ``root`` the root of this mount namespace, detach the old one, root read-only."""
    if _SYS_PIVOT_ROOT is None:
        raise SetupError(f"no pivot_root syscall number for {os.uname().machine}")
    os.chdir(root)
    _check(_libc.syscall(_SYS_PIVOT_ROOT, b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", MNT_DETACH), "detaching the host's root")
    os.chdir("/")
    mount(None, "/", None, MS_BIND | MS_REMOUNT | _READ_ONLY)


def attach(req: RunRequest) -> None:
    """Per run: finish the root :func:`build_root` assembled, then make it the root.

    Names the run's user in ``/etc`` (then read-only), binds the workspace (read-write,
    nosuid, nodev) at ``sandbox.workspace_path`` and the run's cgroup view, then
    ``pivot_root`` and the host's root is detached. The workspace is resolved below the
    descriptor of the workspaces directory opened by :func:`build_root`, one component
    at a time and never following a symlink.
    """
    spec = req.sandbox
    root = _STAGE
    uid = req.inner_uid if req.inner_uid is not None else req.uid
    gid = req.inner_uid if req.inner_uid is not None else req.gid
    try:
        write_file(
            f"{root}/etc/passwd",
            "root:x:0:0:root:/root:/usr/sbin/nologin\n"
            f"sandbox:x:{uid or 0}:{gid or 0}:sandbox:{spec.workspace_path}:{spec.shell}\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        )
        write_file(f"{root}/etc/group", f"root:x:0:\nsandbox:x:{gid or 0}:\nnogroup:x:65534:\n")
    except OSError as exc:
        raise SetupError(f"writing /etc/passwd: {exc}") from None
    mount(None, f"{root}/etc", None, MS_BIND | MS_REMOUNT | _READ_ONLY | MS_NOEXEC)
    base, path = spec.workspaces, req.workspace
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
        _bind(fd, root + spec.workspace_path, MS_NOSUID | MS_NODEV)
    except OSError as exc:
        raise SetupError(f"showing the workspace: {exc}") from None
    finally:
        os.close(fd)
    if req.cgroup_view is not None:
        mount_cgroup_view(req.cgroup_view, root)
    _pivot(root)


def _cgroup_file(path: str, flags: int) -> int:
    """Open a host cgroup file: below a descriptor kept by :func:`build_root`, if any."""
    for base, fd in _CGROUP_FDS.items():
        if _under(path, base):
            rel = os.path.relpath(path, base)
            return os.open(rel, flags | os.O_CLOEXEC, dir_fd=fd)
    if _CGROUP_FDS:
        raise SetupError(f"the cgroup {path!r} is not below the provider's cgroups")
    return os.open(path, flags | os.O_CLOEXEC)


CGROUP_VIEW = "/sys/fs/cgroup"
_VIEW_NAMES = frozenset(("", "memory", "cpu", "cpuacct", "pids", "blkio", "unified"))
_VIEW_FLAGS = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC


def mount_cgroup_view(view: tuple[tuple[str, str], ...], root: str = "") -> None:
    """Cover ``<root>/sys/fs/cgroup`` with the run's own cgroup directories, all read-only.

    ``view`` holds ``(name, host directory)`` pairs (see ``CgroupRun.view``): each
    directory is bound at ``/sys/fs/cgroup/<name>`` (``""``: at ``/sys/fs/cgroup``), then
    made read-only, nosuid, nodev, noexec; the tmpfs holding them is made read-only too.
    Only ever inside the sandbox's own mount namespace: refuses anywhere else.
    """
    if not _SERVER_NS.get("mnt") or _ns_id("mnt") == _SERVER_NS["mnt"]:
        raise SetupError("refusing to mount the cgroup view outside the sandbox's mount namespace")
    base = root + CGROUP_VIEW
    if not os.path.isdir(base):
        return
    sources: list[tuple[str, int]] = []
    try:
        for name, source in view:
            if name not in _VIEW_NAMES or any(name == seen for seen, _ in sources):
                raise SetupError(f"bad cgroup view entry {name!r}")
            try:
                fd = _cgroup_file(source, os.O_PATH | os.O_DIRECTORY)
            except OSError as exc:
                raise SetupError(f"opening the workspace's cgroup {source!r}: {exc}") from None
            sources.append((name, fd))
        if any(name == "" for name, _ in sources) and len(sources) > 1:
            raise SetupError("a cgroup view bound at the root holds nothing else")
        if sources and sources[0][0] == "":
            _bind(sources[0][1], base, _VIEW_FLAGS)
            return
        flags = _VIEW_FLAGS & ~MS_RDONLY
        mount("tmpfs", base, "tmpfs", flags, "mode=0755,size=16k,nr_inodes=64")
        for name, fd in sources:
            target = f"{base}/{name}"
            os.mkdir(target, 0o755)
            _bind(fd, target, _VIEW_FLAGS)
        mount(None, base, None, MS_REMOUNT | _VIEW_FLAGS)
    finally:
        for _, fd in sources:
            os.close(fd)


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


def _drop_privileges(req: RunRequest) -> None:
    if req.gid is not None:
        os.setgroups([])
        os.setresgid(req.gid, req.gid, req.gid)
    if req.uid is not None:
        os.setresuid(req.uid, req.uid, req.uid)


def _join_cgroups(req: RunRequest) -> None:
    """The payload's first step, which needs nothing of the sandbox's root: its cgroups
    (the workspace's, then the run's own) and a cgroup namespace rooted there. A pre-built
    sandbox's payload takes it while init is still attaching (see :func:`_hand_over`)."""
    for path in [*req.cgroups, *([req.kill_cgroup] if req.kill_cgroup else [])]:
        try:
            fd = _cgroup_file(path, os.O_WRONLY)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
        except OSError as exc:
            raise SetupError(f"joining cgroup {path}: {exc}") from None
    if req.cgroup_view is not None and not req.sandbox.mountns:
        # without a new root (allow_weaker=["pivot_root"]): over the host's, in this
        # mount namespace only; after the joins, before anything drops privileges
        mount_cgroup_view(req.cgroup_view)
    for fd in _CGROUP_FDS.values():
        os.close(fd)
    _CGROUP_FDS.clear()
    if req.cgroupns:
        unshare(CLONE_NEWCGROUP)


def _prepare_payload(req: RunRequest, fds: list[int], keep: tuple[int, ...]) -> None:
    """Everything between the cgroups and running the code, in the sandbox's root
    (every descriptor closed but stdio and ``keep``); raises SetupError on any failure."""
    stdin_fd, stdout_fd, stderr_fd = fds
    for target, fd in ((0, stdin_fd), (1, stdout_fd), (2, stderr_fd)):
        os.dup2(fd, target)
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 16)
    # init is not dumpable (it holds host descriptors); with those closed, this process
    # may be (rootless, its own /proc/self files must be writable to map its uid)
    prctl(PR_SET_DUMPABLE, 1)
    os.setsid()
    with contextlib.suppress(OSError):
        write_file("/proc/self/oom_score_adj", "0")
    for name, (soft, hard) in req.rlimits.items():
        try:
            resource.setrlimit(_RLIMITS[name], (soft, hard))
        except (OSError, ValueError, KeyError) as exc:
            raise SetupError(f"setrlimit {name}: {exc}") from None
    if req.inner_uid is not None:
        _drop_to_inner_uid(req.inner_uid)
    if req.landlock is not None:
        landlock_restrict(req.landlock, req.landlock_abi)
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    try:
        _drop_privileges(req)
    except OSError as exc:
        raise SetupError(f"dropping privileges: {exc}") from None
    # the uid change made the process non-dumpable, which hides its own /proc files from
    # it; a freshly started program as that uid is dumpable, so restore that (other
    # sandboxes run as other uids, in other pid namespaces: they can reach none of it)
    prctl(PR_SET_DUMPABLE, 1)
    if req.seccomp:
        seccomp_load()
    try:
        os.chdir(req.cwd)
    except OSError as exc:
        raise SetupError(f"chdir to the workspace: {exc}") from None
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    os.environ.clear()
    os.environ.update(req.env)


def _out_buffer(fd: int, unbuffered: bool) -> BinaryIO:
    raw = io.FileIO(fd, "w", closefd=False)
    return raw if unbuffered else io.BufferedWriter(raw)


def _std_streams(unbuffered: bool) -> tuple[TextIO, TextIO, TextIO]:
    """New ``sys.stdin``, ``stdout`` and ``stderr`` over descriptors 0, 1 and 2."""
    stdin: TextIO = io.TextIOWrapper(
        io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding="utf-8"
    )
    stdout: TextIO = io.TextIOWrapper(
        _out_buffer(1, unbuffered), encoding="utf-8", write_through=unbuffered
    )
    stderr: TextIO = io.TextIOWrapper(
        _out_buffer(2, unbuffered),
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,
        write_through=unbuffered,
    )
    return stdin, stdout, stderr


def _new_main() -> types.ModuleType:
    """A fresh ``__main__`` module, as an interpreter starts with."""
    main = types.ModuleType("__main__")
    main.__dict__["__builtins__"] = builtins
    return main


def _rehearse(known: tuple[SandboxSpec, bytes], *, payload: bool) -> None:
    """A pre-built sandbox's process, while it waits: go once through what its part of a
    run does in Python, with a stand-in request and nothing kept or shown.

    Its pages are the fork server's, shared copy-on-write: the first write to each (a
    reference count is one) makes the kernel copy it, ~2 us a page and 150-300 pages a
    step of a run. Here those copies are made before the run, off its path (-0.5 to
    -0.8 ms an in-workspace run, -0.8 to -1.2 ms a one-shot run, measured). Only an
    optimisation: whatever fails here is left for the run itself to meet."""
    with contextlib.suppress(Exception):
        _rehearse_run(known, payload=payload)


def _rehearse_run(known: tuple[SandboxSpec, bytes], *, payload: bool) -> None:
    spec = known[0]
    stand_in = RunRequest(
        sandbox=spec,
        code="pass",
        argv=None,
        code_file=None,
        env={"PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1"},
        workspace=f"{spec.workspaces}/rehearsal/files",
        cwd=spec.workspace_path,
        cgroupns=True,
        uid=None,
        gid=None,
        inner_uid=None,
        rlimits={"nofile": (1024, 1024)},
        landlock=LandlockSpec(ro=("/usr",), rw=(spec.workspace_path,), deny_tcp=True),
        landlock_abi=0,
        seccomp=True,
        cgroups=(),
        kill_cgroup=None,
        cgroup_view=None,
    )
    decode_request(stand_in.encode(), known)
    json.dumps({"event": "exit", "status": 0, "setup_error": None, "killed": False})
    if payload:
        streams = _std_streams(unbuffered=True)
        before = set(sys.modules)
        main = _new_main()
        exec(compile("print", "<string>", "exec", dont_inherit=True), main.__dict__)
        # the list a run's end makes; only the stand-in __main__ is cleared (a module
        # imported here stays whole: the run would find it in sys.modules)
        imported = [m for n, m in reversed(sys.modules.items()) if n not in before]
        _clear_modules([main])
        del streams, main, imported


def _run_python(code: str, extra_path: list[str]) -> int:
    """Run ``code`` like ``python -c`` would, in this (forked, warm) interpreter."""
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # like `python -u` when PYTHONUNBUFFERED is set (as the provider sets it): output
    # reaches the caller as it is printed, flushed or not
    unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))
    if unbuffered:
        # `python -u` leaves the C library's stdout unbuffered too (an extension's printf)
        with contextlib.suppress(ValueError, OSError):
            _libc.setvbuf(ctypes.c_void_p.in_dll(_libc, "stdout"), None, _IONBF, 0)
    sys.stdin, sys.stdout, sys.stderr = _std_streams(unbuffered)
    for name in ("stdin", "stdout", "stderr"):
        setattr(sys, f"__{name}__", getattr(sys, name))
    sys.argv = ["-c"]
    sys.path[:] = ["", *extra_path]
    before = set(sys.modules)
    main = _new_main()
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
    _clear_modules([main])
    _clear_modules([m for n, m in reversed(sys.modules.items()) if n not in before])
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            rc = 120 if rc == 0 else rc
    return rc


def _clear_modules(modules: list[Any]) -> None:
    """What the interpreter's teardown does to the code's modules, so that what they held
    is finalized as at a real exit (a file written and never closed is flushed): their
    names are cleared (``_private`` ones first), then cycles are collected. Called for
    ``__main__`` first, while the modules its objects' finalizers use are whole, then for
    the modules the code imported, the last imported first (the interpreter's order).
    The rest of the warm interpreter is never torn down (the process ends with
    ``os._exit``)."""
    for module in modules:
        names = getattr(module, "__dict__", None)
        if not isinstance(names, dict):
            continue
        with contextlib.suppress(BaseException):
            for first in (True, False):
                for name in list(names):
                    private = name.startswith("_") and not name.startswith("__")
                    if private == first and name != "__builtins__":
                        names[name] = None
    with contextlib.suppress(BaseException):
        gc.collect()


EXIT_NOTE = b"x"
"""Starts the payload's exit note to init: ``x``, then the exit code in one byte."""


@dataclasses.dataclass(frozen=True)
class _ExitNote:
    """The payload's end of the exit-note pipe to init (read by :func:`_read_exit_note`).

    A parent learns that its child ended, and the readers of the child's pipes see them
    close, only once the kernel has torn the child down: 1.2 ms of a 7 ms run for a
    forked interpreter that ran code. So the payload, done, closes every descriptor it
    holds (the output ends; files, locks and sockets are released, an unlinked file's
    space freed) and tells init its exit code itself, just before ``os._exit``: the run
    is over by then but for the memory the kernel is still giving back (charged to the
    workspace's cgroup until it is). Only the payload process sends it (not a process
    the code forked that returns here), and only while ``fd`` is still that pipe (the
    code may close or reuse descriptors; then init learns of the exit as before). Code
    that writes a note itself ends its run with that code, as ``os._exit`` would.
    """

    fd: int
    pid: int
    pipe: tuple[int, int]

    @classmethod
    def open(cls, fd: int | None) -> _ExitNote | None:
        """The note to send on ``fd`` (``None``: there is no pipe to init)."""
        if fd is None:
            return None
        st = os.fstat(fd)
        return cls(fd, os.getpid(), (st.st_dev, st.st_ino))

    def send(self, code: int) -> None:
        """Close every other descriptor, then tell init the exit code."""
        if os.getpid() != self.pid:
            return
        with contextlib.suppress(OSError):
            st = os.fstat(self.fd)
            if (st.st_dev, st.st_ino) != self.pipe:
                return
            os.closerange(0, self.fd)
            os.closerange(self.fd + 1, 1 << 20)
            os.write(self.fd, EXIT_NOTE + bytes((code & 0xFF,)))


def _read_exit_note(fd: int) -> int | None:
    """Init: the wait status that the note on ``fd`` stands for; ``None`` when it is not
    a well-formed note (then the payload's exit is awaited as usual)."""
    try:
        data = os.read(fd, 8)
    except OSError:
        return None
    if len(data) != 2 or data[:1] != EXIT_NOTE:
        return None
    return data[1] << 8  # as waitpid reports an exit with that code


def _exit_code(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    with contextlib.suppress(BaseException):
        print(code, file=sys.stderr)
    return 1


def _payload(
    req: RunRequest,
    fds: list[int],
    err_w: int,
    extra_path: list[str],
    attached: socket.socket | None = None,
    exit_w: int | None = None,
) -> None:
    """Set the sandbox's process up and run the code. A pre-built sandbox's payload waits
    on ``attached`` for init's go-ahead (``G``) once its cgroups are joined; anything
    else there means init failed, and reported it. Python code's exit code goes to init
    on ``exit_w`` before the process ends (see :class:`_ExitNote`)."""
    try:
        _join_cgroups(req)
        if attached is not None:
            ready = attached.recv(1) == b"G"
            attached.close()
            if not ready:
                os._exit(0)
        _prepare_payload(req, fds, (err_w,) if exit_w is None else (err_w, exit_w))
    except BaseException as exc:
        _report_setup_error(err_w, exc)
        os._exit(SETUP_FAILED)
    if req.argv:
        try:
            if req.code_file:
                fd = os.open(req.code_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with open(fd, "w", encoding="utf-8") as f:
                    f.write(req.code)
            os.execve(req.argv[0], list(req.argv), dict(os.environ))
        except OSError as exc:
            _report_setup_error(err_w, SetupError(f"exec {req.argv[0]}: {exc}"))
            os._exit(SETUP_FAILED)
    os.close(err_w)
    note = _ExitNote.open(exit_w)
    rc = _run_python(req.code, extra_path)
    # what the C library buffered (an extension's printf) goes out, as exit() would send it
    _libc.fflush(None)
    if rc >= 0 and note is not None:
        note.send(rc)
    if rc < 0:
        signal.signal(-rc, signal.SIG_DFL)
        os.kill(os.getpid(), -rc)
    os._exit(rc)


def _setup_message(exc: BaseException) -> str:
    return (str(exc) if isinstance(exc, SetupError) else f"{type(exc).__name__}: {exc}")[:4000]


def _report_setup_error(err_w: int, exc: BaseException) -> None:
    with contextlib.suppress(OSError):
        os.write(err_w, _setup_message(exc).encode())


_SERVER_NS: dict[str, int] = {}


def _ns_id(kind: str) -> int:
    """The inode that identifies this process's ``kind`` namespace."""
    return os.stat(f"/proc/self/ns/{kind}").st_ino


def _init_static(spec: SandboxSpec) -> None:
    """PID 1, before any request: the new root, lo up, hostname; not dumpable."""
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    # init keeps host descriptors (workspaces, cgroups): nothing of it is for the code
    prctl(PR_SET_DUMPABLE, 0)
    for kind, wanted in (("mnt", spec.mountns), ("net", spec.netns), ("uts", spec.utsns)):
        if wanted and _ns_id(kind) == _SERVER_NS.get(kind):
            raise SetupError(f"refusing to change the host's {kind} namespace")
    if spec.unshare & CLONE_NEWNS:
        # slave, not private: nothing mounted here reaches the host, but a filesystem the
        # host mounts later below a shared directory (a workspace's disk image) still
        # reaches a sandbox built before it, until its root is switched
        mount(None, "/", None, MS_REC | MS_SLAVE)
    if spec.mountns:
        build_root(spec)
    if spec.netns:
        lo_up()
    if spec.utsns:
        socket.sethostname(spec.hostname)


def _init_attach(req: RunRequest) -> None:
    """PID 1, for one request: its user and its workspace in the new root."""
    if req.sandbox.mountns:
        attach(req)
    for fd in _WORKSPACES_FD:
        os.close(fd)
    _WORKSPACES_FD.clear()


def _drop_host_descriptors(fds: list[int], err_w: int) -> None:
    """Init, once the payload has its copies: keep no host descriptor while the code runs
    (the run's stdio ``fds``, the cgroup directories, the setup-error pipe ``err_w``)."""
    for fd in (*fds, *_CGROUP_FDS.values()):
        os.close(fd)
    _CGROUP_FDS.clear()
    os.close(err_w)


def _init_run(
    req: RunRequest,
    fds: list[int],
    err_w: int,
    st_w: int,
    extra: list[str],
    report: socket.socket,
    ahead: tuple[int, int] | None = None,
) -> None:
    """PID 1: fork the payload (unless it runs already: ``ahead``, its pid and the read
    end of its exit-note pipe), reap, report, exit.

    The status goes to the host directly on ``report`` (one hop sooner than through the
    supervisor) unless the payload ended with the setup-failure code, whose details
    only the supervisor has.
    """
    if ahead is not None:
        payload, exit_r = ahead
    else:
        exit_r, exit_w = os.pipe2(os.O_CLOEXEC)
        payload = os.fork()
        if payload == 0:
            os.close(st_w)
            os.close(exit_r)
            report.close()
            _payload(req, fds, err_w, extra, exit_w=exit_w)
            os._exit(SETUP_FAILED)
        os.close(exit_w)
    _drop_host_descriptors(fds, err_w)
    status, _ = _await_payload(payload, exit_r)
    if status is None:
        os._exit(0)
    os.write(st_w, str(status).encode())
    if os.waitstatus_to_exitcode(status) != SETUP_FAILED:
        _send_json(report, {"event": "exit", "status": status, "from": "init"})
    os._exit(0)


def _isolate_supervisor(spec: SandboxSpec) -> None:
    """The supervisor's own steps: protected from the OOM killer, then new namespaces."""
    with contextlib.suppress(OSError):
        write_file("/proc/self/oom_score_adj", "-1000")
    if spec.userns:
        _enter_userns()
    if spec.unshare:
        unshare(spec.unshare)


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
    err_r, err_w = os.pipe()
    st_r, st_w = os.pipe()
    try:
        req = _recv_request(status_sock)
        _isolate_supervisor(req.sandbox)
    except BaseException as exc:
        _send_json(status_sock, {"event": "exit", "setup_error": str(exc)})
        os._exit(0)
    init = fork_helper()
    if init == 0:
        os.close(err_r)
        os.close(st_r)
        try:
            _init_static(req.sandbox)
            _init_attach(req)
        except BaseException as exc:
            _report_setup_error(err_w, exc)
            os._exit(SETUP_FAILED)
        _init_run(req, io_fds, err_w, st_w, extra, status_sock)
        os._exit(SETUP_FAILED)
    for fd in (*io_fds, err_w, st_w):
        os.close(fd)
    _watch(init, status_sock, err_r, st_r)


def _payload_ahead(
    from_init: socket.socket,
    known: tuple[SandboxSpec, bytes],
    err_w: int,
    extra: list[str],
    exit_w: int | None = None,
) -> NoReturn:
    """The payload of a pre-built sandbox, forked ahead of time: wait for the run's
    descriptors and request from init, then run it (exit quietly when none comes)."""
    _rehearse(known, payload=True)
    try:
        msg, fds, _, _ = socket.recv_fds(from_init, 1, 3)
        req = _recv_request(from_init, known) if msg and len(fds) == 3 else None
    except (OSError, SetupError):
        req = None
    if req is None:
        os._exit(0)
    _payload(req, fds, err_w, extra, attached=from_init, exit_w=exit_w)
    os._exit(SETUP_FAILED)


def _hand_over(
    to_payload: socket.socket, req: RunRequest, raw: bytes, body: bytes, fds: list[int]
) -> None:
    """Init of a pre-built sandbox: the run's stdio and request to the payload first (it
    joins its cgroups meanwhile, on another core), then attach, then let it go on."""
    socket.send_fds(to_payload, [b"R"], fds)
    to_payload.sendall(raw + body)
    _init_attach(req)
    to_payload.sendall(b"G")
    to_payload.close()


def _receive_run(requests: socket.socket) -> tuple[socket.socket, list[int]]:
    """Init of a pre-built sandbox: the run's status socket and its four descriptors
    (status, stdin, stdout, stderr) from the server; exit quietly when none comes."""
    try:
        msg, fds, _, _ = socket.recv_fds(requests, 16, 8)
    except OSError:
        os._exit(0)
    requests.close()
    if not msg or len(fds) != 4:
        os._exit(0)
    return socket.socket(fileno=fds[0]), fds


def warm_supervisor(
    static: SandboxSpec, static_json: bytes, requests: socket.socket, extra: list[str]
) -> None:
    """A pre-built sandbox: namespaces and mounts ready before the request arrives.

    Init waits on ``requests`` for one run's descriptors (sent by the server), reads the
    request, hands the status socket back to this supervisor, and goes on exactly like a
    cold run. Everything here dies with the server.
    """
    known = (static, static_json)
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
    init = fork_helper()
    if init == 0:
        ours.close()
        os.close(err_r)
        os.close(st_r)
        try:
            _init_static(static)
        except BaseException:
            os._exit(SETUP_FAILED)
        to_payload, from_init = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        exit_r, exit_w = os.pipe2(os.O_CLOEXEC)
        payload = os.fork()
        if payload == 0:
            for sock in (requests, theirs, to_payload):
                sock.close()
            os.close(st_w)
            os.close(exit_r)
            _payload_ahead(from_init, known, err_w, extra, exit_w)
        from_init.close()
        os.close(exit_w)
        _rehearse(known, payload=False)
        status_sock, fds = _receive_run(requests)
        try:
            raw = _recv_exact(status_sock, 8)
            body = _recv_exact(status_sock, struct.unpack("!Q", raw)[0])
            socket.send_fds(theirs, [b"S"], [status_sock.fileno()])
            theirs.close()
            req = decode_request(body, known)
            if req.sandbox is not static and req.sandbox != static:
                raise SetupError("the request does not fit this pre-built sandbox")
            _hand_over(to_payload, req, raw, body, fds[1:4])
        except BaseException as exc:
            _report_setup_error(err_w, exc)
            os._exit(SETUP_FAILED)
        _init_run(req, fds[1:4], err_w, st_w, extra, status_sock, (payload, exit_r))
        os._exit(SETUP_FAILED)
    requests.close()
    theirs.close()
    os.close(err_w)
    os.close(st_w)
    try:
        _, fds, _, _ = socket.recv_fds(ours, 16, 1)
    except OSError:
        fds = []
    if not fds:
        with contextlib.suppress(OSError):
            os.kill(init, signal.SIGKILL)
        os._exit(0)
    _watch(init, socket.socket(fileno=fds[0]), err_r, st_r)


def warm_init(
    static: SandboxSpec, static_json: bytes, requests: socket.socket, extra: list[str]
) -> None:
    """A pre-built sandbox without a supervisor: this process is PID 1 of a new pid namespace
    (forked there by the server, see :func:`fork_init`) and watches its own run.

    It makes the other namespaces itself, builds the root and forks the payload ahead of
    time, like the init of :func:`warm_supervisor`; for the run it reads the request,
    attaches, and then reports to the host and kills on request as a supervisor would
    (see :func:`_watch_payload`). When it ends, the kernel kills whatever is left in the
    pid namespace; when the server ends, it is killed (parent-death signal).
    """
    known = (static, static_json)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.setsid()
    err_r, err_w = os.pipe()
    try:
        if static.unshare & ~CLONE_NEWPID:
            unshare(static.unshare & ~CLONE_NEWPID)
        _init_static(static)
    except BaseException:
        os._exit(SETUP_FAILED)
    to_payload, from_init = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    exit_r, exit_w = os.pipe2(os.O_CLOEXEC)
    payload = os.fork()
    if payload == 0:
        requests.close()
        to_payload.close()
        os.close(err_r)
        os.close(exit_r)
        _payload_ahead(from_init, known, err_w, extra, exit_w)
    from_init.close()
    os.close(exit_w)
    _rehearse(known, payload=False)
    status_sock, fds = _receive_run(requests)
    try:
        raw = _recv_exact(status_sock, 8)
        body = _recv_exact(status_sock, struct.unpack("!Q", raw)[0])
        req = decode_request(body, known)
        if req.sandbox is not static and req.sandbox != static:
            raise SetupError("the request does not fit this pre-built sandbox")
        _hand_over(to_payload, req, raw, body, fds[1:4])
    except BaseException as exc:
        _send_json(status_sock, {"event": "exit", "setup_error": _setup_message(exc)})
        os._exit(SETUP_FAILED)
    _drop_host_descriptors(fds[1:4], err_w)
    _watch_payload(payload, status_sock, err_r, exit_r)


def cold_init(fds: list[int], extra: list[str]) -> None:
    """A run without a pre-built sandbox and without a supervisor: like :func:`warm_init`
    (this process is PID 1 of a new pid namespace, forked there by the server), but it
    reads the request first, then makes the namespaces, the root and the payload."""
    status_sock = socket.socket(fileno=fds[0])
    io_fds = fds[1:4]
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.setsid()
    err_r, err_w = os.pipe()
    try:
        req = _recv_request(status_sock)
        spec = req.sandbox
        if spec.userns or not spec.unshare & CLONE_NEWPID:
            raise SetupError("this sandbox needs a supervisor (a user namespace, or no pid one)")
        if spec.unshare & ~CLONE_NEWPID:
            unshare(spec.unshare & ~CLONE_NEWPID)
        _init_static(spec)
        _init_attach(req)
    except BaseException as exc:
        _send_json(status_sock, {"event": "exit", "setup_error": _setup_message(exc)})
        os._exit(SETUP_FAILED)
    exit_r, exit_w = os.pipe2(os.O_CLOEXEC)
    payload = os.fork()
    if payload == 0:
        os.close(err_r)
        os.close(exit_r)
        status_sock.close()
        _payload(req, io_fds, err_w, extra, exit_w=exit_w)
        os._exit(SETUP_FAILED)
    os.close(exit_w)
    _drop_host_descriptors(io_fds, err_w)
    _watch_payload(payload, status_sock, err_r, exit_r)


def _await_payload(
    payload: int, exit_r: int, status_sock: socket.socket | None = None
) -> tuple[int | None, bool]:
    """PID 1: reap every child (orphans come to PID 1) until the payload ends or sends its
    exit note on ``exit_r`` (see :class:`_ExitNote`); its wait status (``None`` if it
    vanished) and whether it was killed. With ``status_sock`` (no supervisor), kill every
    process of the pid namespace when the host asks (``k``) or goes away (EOF)."""
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    killed = False
    watch: list[Any] = [wake_r, exit_r, *([status_sock] if status_sock is not None else [])]
    while True:
        while True:
            try:
                pid, wstatus = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return None, killed
            if pid == 0:
                break
            if pid == payload:
                return wstatus, killed
        ready, _, _ = select.select(watch, [], [])
        if exit_r in ready:
            watch.remove(exit_r)  # one note, well-formed or not
            status = None if killed else _read_exit_note(exit_r)
            if status is not None:
                return status, killed
        if wake_r in ready:
            with contextlib.suppress(OSError):
                os.read(wake_r, 4096)
        if status_sock is not None and status_sock in ready:
            try:
                data = status_sock.recv(64)
            except OSError:
                data = b""
            if not killed and (not data or b"k" in data):
                # -1 from PID 1: every other process of this pid namespace, and only those
                os.kill(-1 if os.getpid() == 1 else payload, signal.SIGKILL)
                killed = True
            if not data:
                watch.remove(status_sock)


def _watch_payload(payload: int, status_sock: socket.socket, err_r: int, exit_r: int) -> None:
    """PID 1 of a supervisor-less sandbox: reap, kill on request, report the exit, exit.

    Waits for the payload as :func:`_await_payload` does, killing every process of the
    pid namespace when the host asks (``k``) or goes away (the status socket closes);
    then reports the payload's status, and the setup error it left on ``err_r`` if any;
    ending then ends the rest.
    """
    status, killed = _await_payload(payload, exit_r, status_sock)
    os.set_blocking(err_r, False)
    chunks = []
    with contextlib.suppress(OSError):
        while chunk := os.read(err_r, 65536):
            chunks.append(chunk)
    setup_error = b"".join(chunks).decode(errors="replace")
    _send_json(
        status_sock,
        {
            "event": "exit",
            "status": status,
            "setup_error": setup_error or None,
            "killed": killed,
            "from": "init",
        },
    )
    os._exit(0)


def _drop_to_inner_uid(inner: int) -> None:
    """Rootless mode: leave the namespace's root for ``inner`` in a nested user namespace.

    The outer user namespace maps its uid 0 to the (unprivileged) host user; a nested one
    maps ``inner`` to that uid 0, and switching to it drops every capability.
    """
    unshare(CLONE_NEWUSER)
    write_file("/proc/self/setgroups", "deny")
    write_file("/proc/self/uid_map", f"{inner} 0 1")
    write_file("/proc/self/gid_map", f"{inner} 0 1")
    os.setresgid(inner, inner, inner)
    os.setresuid(inner, inner, inner)


def _enter_userns() -> None:
    uid, gid = os.getuid(), os.getgid()
    unshare(CLONE_NEWUSER)
    write_file("/proc/self/setgroups", "deny")
    write_file("/proc/self/uid_map", f"0 {uid} 1")
    write_file("/proc/self/gid_map", f"0 {gid} 1")


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def _recv_request(
    sock: socket.socket, known: tuple[SandboxSpec, bytes] | None = None
) -> RunRequest:
    header = _recv_exact(sock, 8)
    (size,) = struct.unpack("!Q", header)
    return decode_request(_recv_exact(sock, size), known)


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


def _hide_command_line() -> None:
    """Blank this process's command line (its config names host paths), as every sandbox's
    init and payload are forks of it: their ``/proc/<pid>/cmdline`` shows nothing of it."""
    with open("/proc/self/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    start, end = int(fields[45]), int(fields[46])  # arg_start, arg_end (fields 48, 49)
    if end > start:
        ctypes.memset(start, 0, end - start)
        title = b"sandstorm-sandbox"[: end - start - 1]
        ctypes.memmove(start, title, len(title))


def serve(ctrl_fd: int, config: dict[str, Any]) -> None:
    """The fork-server loop: one control message (with fds) per run, until EOF."""
    _hide_command_line()
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
    _OWN_PID_NS[:] = [os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)]
    ctrl = socket.socket(fileno=ctrl_fd)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raw_static = config.get("prewarm")
    static = decode(SandboxSpec, raw_static) if raw_static else None
    count = int(config.get("prewarm_count", 0)) if static else 0
    static_json = spec_json(static) if static else b""
    # where the host says so (a pid namespace and no user namespace: a root host) the
    # server forks each sandbox's init straight into its pid namespace: no supervisor
    direct = bool(config.get("direct")) and _can_fork_init()
    warm_direct = (
        direct and static is not None and bool(static.unshare & CLONE_NEWPID) and not static.userns
    )
    pool: list[socket.socket] = []

    def spawn_warm() -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        if (fork_init() if warm_direct else fork_helper()) == 0:
            try:
                ctrl.close()
                ours.close()
                for other in pool:
                    other.close()
                _close_own_pid_ns()
                assert static is not None
                if warm_direct:
                    warm_init(static, static_json, theirs, base_path)
                else:
                    warm_supervisor(static, static_json, theirs, base_path)
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
        if msg == b"F":  # a warm run is over: build the pool back up
            for fd in fds:
                os.close(fd)
            while len(pool) < count:
                spawn_warm()
            continue
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
        if not handed and (fork_init() if direct else fork_helper()) == 0:
            try:
                ctrl.close()
                _close_own_pid_ns()
                for other in pool:
                    other.close()
                if direct:
                    cold_init(fds, base_path)
                else:
                    supervise(fds, base_path)
            finally:
                os._exit(1)
        for fd in fds:
            os.close(fd)
        if msg == b"W" and not pool:  # ran dry: the next run should find one
            while len(pool) < count:
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

    def pivot() -> None:
        ns(CLONE_NEWNS)()
        if _SYS_PIVOT_ROOT is None:
            raise SetupError(f"no pivot_root syscall number for {os.uname().machine}")
        mount(None, "/", None, MS_REC | MS_PRIVATE)
        mount("tmpfs", _STAGE, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
        os.mkdir(f"{_STAGE}/only-this")
        os.chdir(_STAGE)
        _check(_libc.syscall(_SYS_PIVOT_ROOT, b".", b"."), "pivot_root")
        _check(_libc.umount2(b".", MNT_DETACH), "detaching the old root")
        os.chdir("/")
        if os.listdir("/") != ["only-this"]:
            raise SetupError(f"after pivot_root the root holds {os.listdir('/')}")

    def seccomp() -> None:
        seccomp_load()
        try:
            socket.socket(17, socket.SOCK_RAW).close()  # AF_PACKET
        except OSError as exc:
            if exc.errno == errno.EAFNOSUPPORT:
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close()
                return
        raise SetupError("the seccomp filter let an AF_PACKET socket through")

    def landlock() -> None:
        abi = landlock_abi()
        if abi < 1:
            raise SetupError("the kernel has no Landlock (landlock_create_ruleset failed)")
        landlock_restrict(LandlockSpec(ro=("/usr",), rw=(), deny_tcp=False), abi)
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
        "pivot_root": pivot,
        "ipcns": ns(CLONE_NEWIPC),
        "utsns": ns(CLONE_NEWUTS),
        "cgroupns": ns(CLONE_NEWCGROUP),
        "uid_drop": None if rootless else uid_drop,
        "landlock": landlock,
        "seccomp": seccomp,
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
    print("usage: _forkserver.py serve|probe CONFIG_JSON", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""The seccomp programs for both architectures, run on a classic-BPF interpreter.

The x86_64 program is also loaded by the real engine (see the escape suite); the aarch64
one cannot be on this machine, so both are checked here instruction by instruction.
"""

from __future__ import annotations

import errno
import struct

import pytest

from sandstorm.local._forkserver import _SYSCALLS, SetupError, seccomp_program

ALLOW, KILL, ERRNO = 0x7FFF0000, 0x80000000, 0x00050000
AF_UNIX, AF_INET, AF_INET6, AF_NETLINK, AF_PACKET, AF_VSOCK = 1, 2, 10, 16, 17, 40


def run_filter(program: bytes, arch: int, nr: int, args: tuple[int, ...] = ()) -> int:
    """Evaluate ``program`` on one ``seccomp_data`` (nr, arch, ip, args[6])."""
    words = [*args, 0, 0, 0, 0, 0, 0][:6]
    data = struct.pack("<iIQ6Q", nr, arch, 0, *words)
    insns = [struct.unpack("HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        if code == 0x20:  # ld [k]
            acc = struct.unpack_from("<I", data, k)[0]
            pc += 1
        elif code == 0x06:  # ret k
            return k
        elif code in (0x15, 0x35, 0x45):  # jeq, jge, jset
            hit = {0x15: acc == k, 0x35: acc >= k, 0x45: bool(acc & k)}[code]
            pc += 1 + (jt if hit else jf)
        else:
            raise AssertionError(f"unexpected BPF opcode {code:#x}")


@pytest.mark.parametrize("machine", sorted(_SYSCALLS))
def test_the_program_for_each_architecture(machine: str) -> None:
    arch, nr = _SYSCALLS[machine]
    prog = seccomp_program(machine)

    def verdict(name: str, *args: int) -> int:
        return run_filter(prog, arch, nr[name], args)

    other_arch = next(a for m, (a, _) in _SYSCALLS.items() if m != machine)
    assert run_filter(prog, other_arch, 0) == KILL
    assert run_filter(prog, 0x40000003, 0) == KILL  # i386
    for name in ("mount", "ptrace", "unshare", "setns", "bpf", "pivot_root", "keyctl"):
        assert verdict(name) == ERRNO | errno.EPERM, name
    assert verdict("clone3") == ERRNO | errno.ENOSYS
    assert verdict("clone", 0x10000000) == ERRNO | errno.EPERM  # CLONE_NEWUSER
    assert verdict("clone", 0x00020000) == ERRNO | errno.EPERM  # CLONE_NEWNS
    assert verdict("clone", 0x01200011) == ALLOW  # a fork's flags
    for family in (AF_UNIX, AF_INET, AF_INET6):
        assert verdict("socket", family, 1, 0) == ALLOW, family
    assert verdict("socket", AF_NETLINK, 3, 0) == ALLOW  # NETLINK_ROUTE
    for args in ((AF_NETLINK, 3, 9), (AF_NETLINK, 3, 4), (AF_PACKET, 3, 0), (AF_VSOCK, 1, 0)):
        assert verdict("socket", *args) == ERRNO | errno.EAFNOSUPPORT, args
    assert verdict("socketpair", AF_UNIX, 1, 0) == ALLOW
    assert verdict("socketpair", AF_INET, 1, 0) == ERRNO | errno.EAFNOSUPPORT
    # every other syscall is allowed (read, write, open/openat, getpid, execve, exit...)
    ordinary = {"x86_64": (0, 1, 2, 39, 59, 231), "aarch64": (63, 64, 56, 172, 221, 94)}
    for number in ordinary[machine]:
        assert run_filter(prog, arch, number) == ALLOW, number
    if machine == "x86_64":
        assert run_filter(prog, arch, 0x40000000 | 39) == ERRNO | errno.EPERM  # x32


def test_other_machines_get_no_program() -> None:
    with pytest.raises(SetupError, match="riscv64"):
        seccomp_program("riscv64")

"""Kernel-level isolation layers for the verifier sandbox (Linux; ctypes only, no dependencies).

Each function applies one layer to the *calling* process and returns a short
string saying what it actually achieved, so the sandbox can record the
isolation level used instead of assuming it. None of them raises: a layer the
kernel refuses is reported as ``"unavailable: <why>"`` and the caller falls
back to the next layer.

Layers, in the order the sandbox child applies them::

    enter_namespaces()     # fork server, once: new net (+ipc, pid) namespace
    apply_rlimits(...)     # address space, CPU, file size, fds, core dumps
    set_no_new_privs()     # required by Landlock and seccomp for non-root
    apply_landlock(...)    # read-only: Python + data dirs; read/write: private tmp; no TCP, no signals out
    drop_privileges(...)   # root -> nobody, so RLIMIT_NPROC and file modes bind
    apply_seccomp()        # no fork/exec/socket/ptrace/kill/...

The expensive parts (opening Landlock paths, assembling the BPF program,
building capability buffers) have ``prepare_*``/``rlimit_plan``
variants so a fork server can do them once; each child then only makes the
few enforcing syscalls, keeping per-function start-up near the cost of fork().

Usage (inside a process that is about to run untrusted code)::

    from autoif_lib.sandbox import kernel as sos
    print(sos.enter_namespaces(), sos.apply_seccomp())

This module is loaded by file path inside the fork server (which must not
import the ``autoif_lib`` package), so it only imports the standard library.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import math
import os
import platform
import resource
import struct

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.prctl.restype = ctypes.c_int
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_libc.unshare.argtypes = [ctypes.c_int]

PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_THREAD = 0x00010000
_CLONE_NS_MASK = CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET


def _err(what: str) -> str:
    e = ctypes.get_errno()
    return f"unavailable: {what}: {_errno.errorcode.get(e, e)}"


# ----------------------------------------------------------------- namespaces

def enter_namespaces(want_pid: bool = True) -> dict[str, str]:
    """Move the caller into fresh network and IPC (and, optionally, PID) namespaces.

    As root this is a plain unshare(2). Without root it retries inside a new
    user namespace, which unprivileged users may create on most kernels.
    A new PID namespace only applies to children created afterwards, so the
    caller must fork once and continue in the child (which becomes PID 1;
    when it exits the kernel kills everything left in the namespace).
    Returns ``{"network": ..., "ipc": ..., "pid": ...}`` describing what held.
    """
    flags = CLONE_NEWNET | CLONE_NEWIPC | (CLONE_NEWPID if want_pid else 0)
    if _libc.unshare(flags) == 0:
        how = "namespace"
    elif _libc.unshare(flags | CLONE_NEWUSER) == 0:
        how = "namespace (inside a user namespace)"
    elif _libc.unshare(CLONE_NEWNET | CLONE_NEWUSER) == 0:
        return {"network": "namespace (inside a user namespace)", "ipc": "shared", "pid": "shared"}
    else:
        why = _err("unshare")
        return {"network": why, "ipc": why, "pid": why}
    return {"network": how, "ipc": how, "pid": how if want_pid else "shared"}


def set_pdeathsig(sig: int = 9) -> None:
    """Have the kernel send ``sig`` to this process when its parent dies (no orphans)."""
    _libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)


def set_no_new_privs() -> bool:
    """Forbid gaining privileges via exec (setuid binaries); a prerequisite for Landlock/seccomp."""
    return _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0


# -------------------------------------------------------------------- rlimits

def address_space_bytes(statm_fd: int | None = None) -> int:
    """Current virtual size of this process (the baseline the memory cap is added to).

    A fork server passes a kept-open /proc/self/statm descriptor so the
    per-child reading is one pread.
    """
    if statm_fd is not None:
        return int(os.pread(statm_fd, 64, 0).split()[0]) * os.sysconf("SC_PAGE_SIZE")
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def rlimit_plan(*, memory_mb: int, file_size_mb: int, nofile: int = 256, nproc: int | None = None,
                statm_fd: int | None = None) -> list:
    """The limits a child gets, computed once in the fork server: [(name, resource, value), ...].

    The address-space cap is the server's current virtual size (which a
    freshly forked child shares) plus ``memory_mb``. ``nproc=0`` is only
    used as the fork defence of last resort when seccomp is unavailable: it
    binds only after the privilege drop, and it also stops threads.
    """
    plan = [
        ("as", resource.RLIMIT_AS, address_space_bytes(statm_fd) + memory_mb * 2**20),
        ("fsize", resource.RLIMIT_FSIZE, file_size_mb * 2**20),
        ("nofile", resource.RLIMIT_NOFILE, nofile),
        ("core", resource.RLIMIT_CORE, 0),
        ("memlock", resource.RLIMIT_MEMLOCK, 0),
        ("msgqueue", resource.RLIMIT_MSGQUEUE, 0),
    ]
    if nproc is not None:
        plan.append(("nproc", resource.RLIMIT_NPROC, nproc))
    return plan


def apply_rlimits(plan: list, cpu_s: float) -> str:
    """Apply a ``rlimit_plan`` plus a CPU-seconds cap; returns the names that took.

    soft == hard everywhere so the child cannot raise them back (seccomp
    also denies setrlimit/prlimit).
    """
    done = []
    for name, res, value in [*plan, ("cpu", resource.RLIMIT_CPU, max(1, math.ceil(cpu_s)))]:
        try:
            resource.setrlimit(res, (value, value))
            done.append(name)
        except (OSError, ValueError):
            pass
    return ",".join(done)


# ------------------------------------------------------------------- landlock

_LL_CREATE, _LL_ADD_RULE, _LL_RESTRICT = 444, 445, 446  # same numbers on every arch
_LL_VERSION = 1
_LL_RULE_PATH_BENEATH = 1

_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_FS_REMOVE_DIR, _FS_REMOVE_FILE, _FS_MAKE_CHAR, _FS_MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
_FS_MAKE_REG, _FS_MAKE_SOCK, _FS_MAKE_FIFO, _FS_MAKE_BLOCK = 1 << 8, 1 << 9, 1 << 10, 1 << 11
_FS_MAKE_SYM, _FS_REFER, _FS_TRUNCATE, _FS_IOCTL_DEV = 1 << 12, 1 << 13, 1 << 14, 1 << 15
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1
_SCOPE_ABSTRACT_UNIX, _SCOPE_SIGNAL = 1 << 0, 1 << 1


def landlock_abi() -> int:
    """Landlock ABI version supported by the running kernel (0 if none)."""
    v = _libc.syscall(_LL_CREATE, None, ctypes.c_size_t(0), ctypes.c_uint32(_LL_VERSION))
    return max(0, int(v))


def _fs_rights(abi: int) -> int:
    rights = (1 << 13) - 1  # ABI 1: EXECUTE .. MAKE_SYM
    if abi >= 2:
        rights |= _FS_REFER
    if abi >= 3:
        rights |= _FS_TRUNCATE
    if abi >= 5:
        rights |= _FS_IOCTL_DEV
    return rights


def prepare_landlock(read_paths, write_paths) -> tuple[int | None, str]:
    """Build (but do not enforce) a ruleset: read-only beneath ``read_paths``, read-write beneath ``write_paths``.

    Returns ``(ruleset_fd, description)``, or ``(None, "unavailable: ...")``.
    Every right the kernel knows is "handled", so anything not granted here
    is denied (including symlink/device/fifo creation, cross-directory
    renames and /proc). On ABI >= 4 TCP bind/connect are denied too, and on
    ABI >= 6 the process can no longer signal processes outside its domain.
    Paths that do not exist are skipped. Building is the slow part (one
    open per path), so the fork server does it once and children only call
    ``enforce_landlock``.
    """
    abi = landlock_abi()
    if abi < 1:
        return None, _err("landlock")
    fs = _fs_rights(abi)
    net = (_NET_BIND_TCP | _NET_CONNECT_TCP) if abi >= 4 else 0
    scoped = (_SCOPE_ABSTRACT_UNIX | _SCOPE_SIGNAL) if abi >= 6 else 0
    if abi >= 6:
        attr = struct.pack("=QQQ", fs, net, scoped)
    elif abi >= 4:
        attr = struct.pack("=QQ", fs, net)
    else:
        attr = struct.pack("=Q", fs)
    buf = ctypes.create_string_buffer(attr, len(attr))
    rfd = _libc.syscall(_LL_CREATE, buf, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
    if rfd < 0:
        return None, _err("landlock_create_ruleset")
    read = _FS_EXECUTE | _FS_READ_FILE | _FS_READ_DIR
    write = read | _FS_WRITE_FILE | _FS_REMOVE_DIR | _FS_REMOVE_FILE | _FS_MAKE_DIR | _FS_MAKE_REG
    if abi >= 3:
        write |= _FS_TRUNCATE
    file_only = _FS_EXECUTE | _FS_READ_FILE | _FS_WRITE_FILE | (_FS_TRUNCATE if abi >= 3 else 0) | (_FS_IOCTL_DEV if abi >= 5 else 0)
    for paths, access in ((read_paths, read), (write_paths, write)):
        for path in paths:
            try:
                pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                # Rules on a file (not a directory) may only carry file rights.
                allowed = access if os.path.isdir(path) else access & file_only
                rule = ctypes.create_string_buffer(struct.pack("=Qi", allowed & fs, pfd), 12)
                if _libc.syscall(_LL_ADD_RULE, ctypes.c_int(rfd), ctypes.c_int(_LL_RULE_PATH_BENEATH),
                                 rule, ctypes.c_uint32(0)) != 0:
                    why = _err(f"landlock_add_rule {path}")
                    os.close(rfd)
                    return None, why
            finally:
                os.close(pfd)
    extras = (["tcp"] if net else []) + (["signal-scope"] if scoped else [])
    return rfd, f"landlock-abi{abi}" + (f" (+{','.join(extras)})" if extras else "")


def enforce_landlock(ruleset_fd: int) -> bool:
    """Restrict the calling process with a prepared ruleset (irreversible; needs no_new_privs or root)."""
    return _libc.syscall(_LL_RESTRICT, ctypes.c_int(ruleset_fd), ctypes.c_uint32(0)) == 0


def apply_landlock(read_paths, write_paths) -> str:
    """prepare_landlock + enforce_landlock in one go; returns what held."""
    rfd, desc = prepare_landlock(read_paths, write_paths)
    if rfd is None:
        return desc
    try:
        return desc if enforce_landlock(rfd) else _err("landlock_restrict_self")
    finally:
        os.close(rfd)


# --------------------------------------------------------------- privileges

_PR_SET_KEEPCAPS = 8
_CAP_DAC_READ_SEARCH = 2
_CAPSET_NR = {"x86_64": 126, "aarch64": 91}


def prepare_privileges(uid: int, gid: int, keep_read_search: bool = True) -> tuple[object | None, str]:
    """What ``enforce_privileges`` will do, with its buffers built: ``(prepared, description)``.

    As nobody the child cannot write or chmod root's files, signal root's
    processes or read their /proc entries, and RLIMIT_NPROC binds. The one
    capability kept, CAP_DAC_READ_SEARCH, lets it *read* the interpreter
    when that lives somewhere nobody cannot enter (e.g. pyenv under /root,
    mode 0700); Landlock decides which files may actually be read.
    ``prepared`` is None when not running as root (nothing to drop).
    """
    if os.geteuid() != 0:
        return None, f"unchanged (not root, uid {os.geteuid()})"
    arch = platform.machine()
    keep = keep_read_search and arch in _CAPSET_NR
    if not keep:
        return (uid, gid, None), f"uid {uid}"
    # struct __user_cap_header_struct {u32 version; int pid} + two
    # __user_cap_data_struct {u32 effective, permitted, inheritable} (v3, 64-bit sets).
    header = ctypes.create_string_buffer(struct.pack("=Ii", 0x20080522, 0), 8)
    bit = 1 << _CAP_DAC_READ_SEARCH
    data = ctypes.create_string_buffer(struct.pack("=6I", bit, bit, 0, 0, 0, 0), 24)
    zero = ctypes.create_string_buffer(bytes(24), 24)
    return (uid, gid, (_CAPSET_NR[arch], header, data, zero)), f"uid {uid} (+CAP_DAC_READ_SEARCH)"


def enforce_privileges(prepared) -> bool:
    """Drop to the prepared uid/gid (keeping CAP_DAC_READ_SEARCH if prepared so); False if anything failed."""
    uid, gid, caps = prepared
    try:
        if caps is not None:
            _libc.prctl(_PR_SET_KEEPCAPS, 1, 0, 0, 0)
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError:
        return False
    if caps is not None:
        nr, header, data, zero = caps
        ok = _libc.syscall(nr, header, data) == 0
        _libc.prctl(_PR_SET_KEEPCAPS, 0, 0, 0, 0)
        if not ok:
            # Keeping the capability failed: drop the permitted set KEEPCAPS retained too.
            _libc.syscall(nr, header, zero)
            return False
    return True


def drop_privileges(uid: int, gid: int, keep_read_search: bool = True) -> str:
    """prepare_privileges + enforce_privileges in one go; returns what held."""
    prepared, desc = prepare_privileges(uid, gid, keep_read_search)
    if prepared is None:
        return desc
    return desc if enforce_privileges(prepared) else "unavailable: could not drop root"


# ---------------------------------------------------------------- seccomp

_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}

# Syscall numbers that get EPERM unconditionally. Processes and programs:
# fork/vfork/execve*; networking; debugging/peeking at other processes;
# namespaces, mounts, keys, BPF, io_uring (which would bypass this filter),
# kernel modules, clocks, privilege changes, raw device nodes, file metadata.
_DENY = {
    "x86_64": {
        "fork": 57, "vfork": 58, "execve": 59, "execveat": 322,
        "socket": 41, "socketpair": 53, "connect": 42, "bind": 49, "listen": 50, "accept": 43, "accept4": 288,
        "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312,
        "kill": 62, "tkill": 200, "tgkill": 234, "rt_sigqueueinfo": 129, "rt_tgsigqueueinfo": 297,
        "pidfd_open": 434, "pidfd_getfd": 438, "pidfd_send_signal": 424,
        "setrlimit": 160, "mount": 165, "umount2": 166, "unshare": 272, "setns": 308, "pivot_root": 155,
        "chroot": 161, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
        "open_tree": 428, "mount_setattr": 442,
        "keyctl": 250, "add_key": 248, "request_key": 249, "bpf": 321, "perf_event_open": 298,
        "userfaultfd": 323, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "kexec_load": 246, "kexec_file_load": 320, "init_module": 175, "finit_module": 313,
        "delete_module": 176, "reboot": 169, "swapon": 167, "swapoff": 168, "acct": 163, "quotactl": 179,
        "syslog": 103, "settimeofday": 164, "clock_settime": 227, "clock_adjtime": 305, "adjtimex": 159,
        "sethostname": 170, "setdomainname": 171, "iopl": 172, "ioperm": 173, "mknod": 133, "mknodat": 259,
        "open_by_handle_at": 304, "name_to_handle_at": 303, "lookup_dcookie": 212, "fanotify_init": 300,
        "personality": 135, "setuid": 105, "setgid": 106, "setreuid": 113, "setregid": 114,
        "setresuid": 117, "setresgid": 119, "setgroups": 116, "setfsuid": 122, "setfsgid": 123,
        "capset": 126, "vhangup": 153,
        # File metadata: Landlock does not cover chmod/chown/xattrs.
        "chmod": 90, "fchmod": 91, "fchmodat": 268, "fchmodat2": 452, "chown": 92, "fchown": 93,
        "lchown": 94, "fchownat": 260, "setxattr": 188, "lsetxattr": 189, "fsetxattr": 190,
        "removexattr": 197, "lremovexattr": 198, "fremovexattr": 199,
    },
    "aarch64": {
        "execve": 221, "execveat": 281,
        "socket": 198, "socketpair": 199, "connect": 203, "bind": 200, "listen": 201, "accept": 202, "accept4": 242,
        "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271, "kcmp": 272,
        "kill": 129, "tkill": 130, "tgkill": 131, "rt_sigqueueinfo": 138, "rt_tgsigqueueinfo": 240,
        "pidfd_open": 434, "pidfd_getfd": 438, "pidfd_send_signal": 424,
        "setrlimit": 164, "mount": 40, "umount2": 39, "unshare": 97, "setns": 268, "pivot_root": 41,
        "chroot": 51, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
        "open_tree": 428, "mount_setattr": 442,
        "keyctl": 219, "add_key": 217, "request_key": 218, "bpf": 280, "perf_event_open": 241,
        "userfaultfd": 282, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "kexec_load": 104, "kexec_file_load": 294, "init_module": 105, "finit_module": 273,
        "delete_module": 106, "reboot": 142, "swapon": 224, "swapoff": 225, "acct": 89, "quotactl": 60,
        "syslog": 116, "settimeofday": 170, "clock_settime": 112, "clock_adjtime": 266, "adjtimex": 171,
        "sethostname": 161, "setdomainname": 162, "mknodat": 33,
        "open_by_handle_at": 265, "name_to_handle_at": 264, "lookup_dcookie": 18, "fanotify_init": 262,
        "personality": 92, "setuid": 146, "setgid": 144, "setreuid": 145, "setregid": 143,
        "setresuid": 147, "setresgid": 149, "setgroups": 159, "setfsuid": 151, "setfsgid": 152,
        "capset": 91, "vhangup": 58,
        "fchmod": 52, "fchmodat": 53, "fchmodat2": 452, "fchown": 55, "fchownat": 54,
        "setxattr": 5, "lsetxattr": 6, "fsetxattr": 7, "removexattr": 14, "lremovexattr": 15,
        "fremovexattr": 16,
    },
}
# Conditional syscalls (same names on both arches).
_NR = {
    "x86_64": {"clone": 56, "clone3": 435, "prlimit64": 302},
    "aarch64": {"clone": 220, "clone3": 435, "prlimit64": 261},
}

_RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000
_RET_ALLOW = 0x7FFF0000
_LD_W_ABS = 0x20
_JEQ_K, _JGE_K, _JSET_K = 0x15, 0x35, 0x45
_RET_K = 0x06
_OFF_NR, _OFF_ARCH = 0, 4


def _arg(i: int, high: bool = False) -> int:
    """Offset of the low (or high) 32 bits of syscall argument i in struct seccomp_data (little endian)."""
    return 16 + 8 * i + (4 if high else 0)


class _Asm:
    """A tiny classic-BPF assembler with forward labels (seccomp only allows forward jumps)."""

    def __init__(self):
        self.ins: list[list] = []
        self.labels: dict[str, int] = {}

    def op(self, code, k=0, jt=0, jf=0):
        self.ins.append([code, jt, jf, k])

    def label(self, name):
        self.labels[name] = len(self.ins)

    def assemble(self) -> bytes:
        out = []
        for i, (code, jt, jf, k) in enumerate(self.ins):
            offs = []
            for tgt in (jt, jf):
                if isinstance(tgt, str):
                    tgt = self.labels[tgt] - (i + 1)
                if not 0 <= tgt <= 255:
                    raise ValueError("BPF jump out of range")
                offs.append(tgt)
            out.append(struct.pack("=HBBI", code, offs[0], offs[1], k & 0xFFFFFFFF))
        return b"".join(out)


def seccomp_program(arch: str) -> bytes:
    """Build the filter: deny list -> EPERM, clone3 -> ENOSYS, conditional clone/prlimit64, else allow.

    * clone is allowed only with CLONE_THREAD and no namespace flags, so
      threads work but fork()/posix_spawn (which glibc implements with
      clone) fail with EPERM. This binds for root, unlike RLIMIT_NPROC.
    * clone3 returns ENOSYS: its flags live in memory, which BPF cannot
      inspect, and glibc then falls back to clone for pthread_create.
    * kill/tkill/tgkill/rt_(tg)sigqueueinfo: EPERM -- a verifier has no one
      to signal (Landlock's signal scope and the uid drop back this up).
    * prlimit64 only as a getter (new_limit == NULL).
    * A foreign architecture (e.g. 32-bit int 0x80 on x86_64) or an x32
      syscall number kills the process: a classic seccomp bypass otherwise.
    """
    deny, nr = _DENY[arch], _NR[arch]
    a = _Asm()
    a.op(_LD_W_ABS, _OFF_ARCH)
    a.op(_JEQ_K, _AUDIT_ARCH[arch], 1, 0)
    a.op(_RET_K, _RET_KILL_PROCESS)
    a.op(_LD_W_ABS, _OFF_NR)
    if arch == "x86_64":
        a.op(_JGE_K, 0x40000000, "kill", 0)  # __X32_SYSCALL_BIT
    for n in sorted(set(deny.values())):
        a.op(_JEQ_K, n, "eperm", 0)
    a.op(_JEQ_K, nr["clone3"], "enosys", 0)
    a.op(_JEQ_K, nr["clone"], "clone", 0)
    a.op(_JEQ_K, nr["prlimit64"], "prlimit", 0)
    a.op(_RET_K, _RET_ALLOW)
    a.label("clone")
    a.op(_LD_W_ABS, _arg(0))
    a.op(_JSET_K, _CLONE_NS_MASK, "eperm", 0)
    a.op(_JSET_K, CLONE_THREAD, "allow", "eperm")
    a.label("prlimit")
    a.op(_LD_W_ABS, _arg(2))
    a.op(_JEQ_K, 0, 0, "eperm")
    a.op(_LD_W_ABS, _arg(2, high=True))
    a.op(_JEQ_K, 0, "allow", "eperm")
    a.label("allow")
    a.op(_RET_K, _RET_ALLOW)
    a.label("eperm")
    a.op(_RET_K, _RET_ERRNO | _errno.EPERM)
    a.label("enosys")
    a.op(_RET_K, _RET_ERRNO | _errno.ENOSYS)
    a.label("kill")
    a.op(_RET_K, _RET_KILL_PROCESS)
    return a.assemble()


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def prepare_seccomp() -> tuple[object | None, str]:
    """Assemble the filter for this machine once: ``(prepared, description)`` or ``(None, "unavailable: ...")``."""
    arch = platform.machine()
    if arch not in _DENY:
        return None, f"unavailable: no syscall table for {arch}"
    prog = seccomp_program(arch)
    buf = ctypes.create_string_buffer(prog, len(prog))
    fprog = _SockFprog(len(prog) // 8, ctypes.addressof(buf))
    return (buf, fprog), f"seccomp-bpf ({arch}, {len(prog) // 8} insns)"


def enforce_seccomp(prepared) -> bool:
    """Install a prepared filter on the calling thread (irreversible; needs no_new_privs or root)."""
    _, fprog = prepared
    return _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0) == 0


def apply_seccomp() -> str:
    """prepare_seccomp + enforce_seccomp in one go; returns what held."""
    prepared, desc = prepare_seccomp()
    if prepared is None:
        return desc
    return desc if enforce_seccomp(prepared) else _err("seccomp")

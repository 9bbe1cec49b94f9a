"""The operating system's layers around one submission's process, applied before its code runs.

Runs inside the sandbox (imports only the standard library, and pyseccomp where installed).
Each layer is tried, and what it achieved is recorded by name, so the grader can say which
layers were active and refuse to grade a course with fewer than it requires:

- rlimits: memory, CPU seconds, file size, no new processes, no core dumps;
- uid: when started as root, a uid of its own with no capabilities, verified after the drop;
- landlock: the file system reads only Python's own folders, and writes nowhere;
- seccomp: no exec, fork or threads, signals only to itself, no ptrace, no other process's
  memory or scheduling, no sockets, no System V IPC or message queues, no opening a file for
  writing, no mounts or namespaces.
(The namespace layer, bubblewrap, is set up from outside, by host.py.)
"""
import ctypes
import errno
import os
import resource

PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 1, 4, 38
WRITE_FLAGS = (os.O_WRONLY, os.O_RDWR, os.O_CREAT, os.O_TRUNC, os.O_APPEND, getattr(os, "O_TMPFILE", 0))
TIOCSTI = 0x5412      # pushes characters into a terminal's input: never


class LayerFailed(Exception):
    """A layer the grader requires could not be put in place: the submission must not run."""


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def prctl(option, value):
    if _libc().prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option})")


def limit(memory_bytes=None, cpu_seconds=None, file_bytes=None):
    """Limits that hold even where nothing else does."""
    if memory_bytes is not None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    if cpu_seconds is not None:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
    if file_bytes is not None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))


def drop_to(uid):
    """From root to `uid` (as its own group too), with no capabilities; proved, not assumed."""
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (uid, uid, uid) or os.getgroups():
        raise LayerFailed(f"the drop to uid {uid} did not take")
    try:
        os.setuid(0)
    except PermissionError:
        pass
    else:
        raise LayerFailed("the sandbox could become root again after dropping to its own uid")
    with open("/proc/self/status") as f:
        caps = {k: v.strip() for k, v in (line.split(":", 1) for line in f if line.startswith("Cap"))}
    if int(caps.get("CapEff", "0"), 16) or int(caps.get("CapPrm", "0"), 16):
        raise LayerFailed(f"the sandbox kept capabilities after the drop ({caps})")


def cannot_read(paths):
    """Proves, after the other layers, that the grader's private files (hidden tests, the
    reference) are out of reach, whichever layer hides them: namespaces, Landlock or permissions."""
    for path in paths:
        try:
            if os.path.isdir(path):
                os.listdir(path)
            else:
                with open(path, "rb") as f:
                    f.read(1)
        except (PermissionError, FileNotFoundError, NotADirectoryError):
            continue
        raise LayerFailed(f"the sandbox can read {path}")


# -- landlock: raw system calls (same numbers on every architecture that has it) ---------------
_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446
_PATH_BENEATH = 1
_READ_RIGHTS = 1 | 4 | 8          # EXECUTE, READ_FILE, READ_DIR
_FILE_RIGHTS = 1 | 2 | 4          # what a rule on a file (not a folder) may carry, write aside


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_abi():
    """The kernel's Landlock ABI version, or 0 where it has none (or a filter refuses the call)."""
    try:
        libc = _libc()
        libc.syscall.restype = ctypes.c_long
        abi = libc.syscall(_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
        return max(int(abi), 0)
    except Exception:
        return 0


def landlock(readable):
    """Reads only beneath `readable` (paths), writes nowhere, for this process and its children."""
    abi = landlock_abi()
    if abi < 1:
        raise LayerFailed("this kernel has no Landlock")
    handled = (1 << 13) - 1                    # ABI 1: every file-system right
    if abi >= 2:
        handled |= 1 << 13                     # REFER
    if abi >= 3:
        handled |= 1 << 14                     # TRUNCATE
    if abi >= 5:
        handled |= 1 << 15                     # IOCTL_DEV
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    attr = _RulesetAttr(handled)
    ruleset = libc.syscall(_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)),
                           ctypes.c_uint32(0))
    if ruleset < 0:
        raise LayerFailed(f"landlock_create_ruleset failed (errno {ctypes.get_errno()})")
    try:
        for path in readable:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                rights = _READ_RIGHTS if os.path.isdir(path) else _READ_RIGHTS & _FILE_RIGHTS
                rule = _PathBeneath(rights & handled, fd)
                if libc.syscall(_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(_PATH_BENEATH),
                                ctypes.byref(rule), ctypes.c_uint32(0)) != 0:
                    raise LayerFailed(f"landlock_add_rule failed for {path} (errno {ctypes.get_errno()})")
            finally:
                os.close(fd)
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        if libc.syscall(_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            raise LayerFailed(f"landlock_restrict_self failed (errno {ctypes.get_errno()})")
    finally:
        os.close(ruleset)


# -- seccomp ------------------------------------------------------------------------------------
_DENIED = (
    # new programs and processes (threads too: clone is refused whatever its flags)
    "execve", "execveat", "fork", "vfork", "clone",
    # other processes: debugging, their memory, their handles
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_open", "pidfd_getfd",
    "pidfd_send_signal", "tkill", "kcmp",
    # the network and other hosts' processes
    "socket", "socketpair",
    # the file system, beyond reading: what opening for write does not cover
    "rename", "renameat", "renameat2", "unlink", "unlinkat", "mkdir", "mkdirat", "rmdir",
    "link", "linkat", "symlink", "symlinkat", "chmod", "fchmod", "fchmodat", "chown", "fchown",
    "lchown", "fchownat", "truncate", "ftruncate", "mknod", "mknodat", "creat", "utime", "utimes",
    "utimensat", "futimesat", "setxattr", "lsetxattr", "fsetxattr", "removexattr", "lremovexattr",
    "fremovexattr", "name_to_handle_at", "open_by_handle_at",
    # the machine: mounts, namespaces, identities, kernel objects
    "mount", "umount2", "pivot_root", "chroot", "setns", "unshare", "bpf", "perf_event_open",
    "userfaultfd", "keyctl", "add_key", "request_key", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid",
    "setgroups", "setfsuid", "setfsgid", "capset", "personality", "acct", "swapon", "swapoff",
    "reboot", "sethostname", "setdomainname", "kexec_load", "init_module", "finit_module",
    "delete_module", "fanotify_init", "quotactl", "move_mount", "open_tree", "fsopen", "fsmount",
    "fspick", "mount_setattr",
    # what children of one zygote share (a batch grades several students' at once on one): System V
    # IPC and POSIX message queues of its IPC namespace, and other processes' scheduling and memory
    "shmget", "shmat", "shmdt", "shmctl", "msgget", "msgsnd", "msgrcv", "msgctl", "semget", "semop",
    "semtimedop", "semctl", "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify",
    "mq_getsetattr", "setpriority", "ioprio_set",
)
# Calls allowed on the process itself only (pid 0), never on another child of the zygote.
_SELF_ONLY = ("sched_setaffinity", "sched_setscheduler", "sched_setparam", "sched_setattr", "migrate_pages",
              "move_pages")


def seccomp():
    """Installs the filter; raises LayerFailed where pyseccomp or libseccomp is missing."""
    try:
        import pyseccomp as sc
    except Exception as e:           # not installed, or no libseccomp.so on this machine
        raise LayerFailed(f"pyseccomp is not usable here ({type(e).__name__}: {e})") from None
    me = os.getpid()
    deny = sc.ERRNO(errno.EPERM)
    f = sc.SyscallFilter(sc.ALLOW)
    for name in _DENIED:
        try:
            f.add_rule(deny, name)
        except Exception:
            pass                      # a call this architecture does not have
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")          # so that libc falls back to clone: refused
    f.add_rule(sc.ERRNO(errno.ENOSYS), "openat2")         # its flags sit behind a pointer: no
    f.add_rule(deny, "kill", sc.Arg(0, sc.NE, me))
    f.add_rule(deny, "tgkill", sc.Arg(0, sc.NE, me))
    f.add_rule(deny, "rt_sigqueueinfo", sc.Arg(0, sc.NE, me))
    f.add_rule(deny, "rt_tgsigqueueinfo", sc.Arg(0, sc.NE, me))
    f.add_rule(deny, "prlimit64", sc.Arg(0, sc.NE, 0))
    for name in _SELF_ONLY:
        try:
            f.add_rule(deny, name, sc.Arg(0, sc.NE, 0))
        except Exception:
            pass
    f.add_rule(deny, "ioctl", sc.Arg(1, sc.EQ, TIOCSTI))
    for flag in WRITE_FLAGS:
        if flag:
            f.add_rule(deny, "openat", sc.Arg(2, sc.MASKED_EQ, flag, flag))
            try:
                f.add_rule(deny, "open", sc.Arg(1, sc.MASKED_EQ, flag, flag))
            except Exception:
                pass                  # aarch64 has openat only
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    try:
        f.load()
    except OSError as e:
        raise LayerFailed(f"the seccomp filter could not be loaded ({e})") from None

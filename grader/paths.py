"""Reading a submission without ever following a symbolic link. Standard library only.

A submission is one folder of regular files. Every path the grader reads in it is walked one
component at a time, each opened relative to the folder before it with O_NOFOLLOW, so no link is
followed anywhere, and no link can be swapped in between a check and a read (the walk holds each
folder open; openat2's RESOLVE_NO_SYMLINKS would do the same in one call).

Which links are refused: every link in the path as given, and every link inside the submission.
For a relative path the walk starts at the working directory (the kernel's own, which holds no
link); for an absolute one, at `/`. The one exception is a link directly in `/` that root owns
(/tmp -> private/tmp and /var -> private/var on macOS, /lib -> usr/lib, /home -> var/home): only
root can make one, so it is the machine's layout, never a submission's doing. A link anywhere
below it, made by whoever, is refused.
"""
import errno
import os
import stat

O_PATH = getattr(os, "O_PATH", 0)             # Linux: open a folder only to walk on from it
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
NONBLOCK = getattr(os, "O_NONBLOCK", 0)
MAX_ENTRIES = 10_000                            # entries a walk visits before it gives up
MAX_DEPTH = 64


class Refused(Exception):
    """A path the grader will not read, and why: a symbolic link in it or inside it."""


class TooMany(Exception):
    """A walk met more entries, or deeper folders, than it visits."""


def shown(text, limit=200):
    """A file name or a link's target as it may be printed: anything unprintable escaped (a name
    may hold a newline, a terminal escape or a bidi mark), cut to `limit` characters."""
    text = os.fsdecode(text) if isinstance(text, bytes) else str(text)
    out = "".join(c if c.isprintable() and c != "\\" else c.encode("unicode_escape", "backslashreplace").decode()
                  for c in text[:limit])
    return out + ("..." if len(text) > limit else "")


def _parts(path):
    text = os.fspath(path)
    return text.startswith("/"), [c for c in text.split("/") if c not in ("", ".")]


def _system_link(dirfd, st):
    """A link directly in `/`, made by root: the machine's own layout."""
    return st.st_uid == 0 and os.path.samestat(os.fstat(dirfd), os.stat("/"))


def _link_refused(dirfd, name):
    # Named by its own name: the folders above it may be the instructor's, not for a report
    try:
        target = os.readlink(name, dir_fd=dirfd)
    except OSError:
        target = "?"
    return Refused(f"{shown(name)} is a symbolic link (to {shown(target)}): a submission is a folder of "
                   "regular files, and the grader follows no link")


def _enter(dirfd, name, where, listing=False):
    """The folder `name` in `dirfd`, opened without following a link (Refused if it is one)."""
    flags = (os.O_RDONLY if listing or not O_PATH else O_PATH) | os.O_DIRECTORY
    try:
        return os.open(name, flags | NOFOLLOW, dir_fd=dirfd)
    except OSError as e:
        if e.errno not in (errno.ENOTDIR, errno.ELOOP, errno.EMLINK):
            raise
    st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):
        raise NotADirectoryError(errno.ENOTDIR, "not a folder", where)
    if not _system_link(dirfd, st):
        raise _link_refused(dirfd, name)
    return os.open(name, flags, dir_fd=dirfd)


def _walk_to(absolute, parts, listing=False):
    """An open fd of the folder `parts` lead to (from / or the working directory)."""
    fd = os.open("/" if absolute else ".", (O_PATH or os.O_RDONLY) | os.O_DIRECTORY)
    try:
        for i, name in enumerate(parts):
            where = ("/" if absolute else "") + "/".join(parts[:i + 1])
            nxt = _enter(fd, name, where, listing and i == len(parts) - 1)
            os.close(fd)
            fd = nxt
        if listing and not parts:
            nxt = os.open(".", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        return fd
    except BaseException:
        os.close(fd)
        raise


def open_folder(path, listing=True):
    """An fd of the folder `path` (readable for listing unless listing=False); Refused when the path
    holds a link, FileNotFoundError or NotADirectoryError as os.open would raise them."""
    absolute, parts = _parts(path)
    return _walk_to(absolute, parts, listing)


def open_parent(path):
    """(fd of the folder holding `path`, the last component's name), no link followed on the way."""
    absolute, parts = _parts(path)
    if not parts or parts[-1] == "..":
        raise IsADirectoryError(errno.EISDIR, "a folder, not a file", os.fspath(path))
    return _walk_to(absolute, parts[:-1]), parts[-1]


def lstat(path):
    """The path's own status (a link is not followed), or None when it does not exist; Refused when
    a folder above it is a link."""
    try:
        fd, name = open_parent(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        return os.stat(name, dir_fd=fd, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        return None
    finally:
        os.close(fd)


def open_file(dirfd, name, st):
    """`name` in `dirfd`, a regular file whose status was `st`, opened for reading without
    following a link or blocking; OSError if it changed since."""
    fd = os.open(name, os.O_RDONLY | NOFOLLOW | NONBLOCK, dir_fd=dirfd)
    now = os.fstat(fd)
    if not stat.S_ISREG(now.st_mode) or not os.path.samestat(now, st):
        os.close(fd)
        raise OSError(errno.ESTALE, "it changed while it was read")
    return fd


class Entry:
    """One entry met by walk(): its path relative to the walk's folder, its own status, a link's
    target; open() reads a regular one (only while the walk is on it)."""

    def __init__(self, rel, st, dirfd, name):
        self.rel, self.st, self._dirfd, self._name = rel, st, dirfd, name
        self.is_link = stat.S_ISLNK(st.st_mode)
        self.is_dir = stat.S_ISDIR(st.st_mode)
        self.is_file = stat.S_ISREG(st.st_mode)
        self.target = ""
        if self.is_link:
            try:
                self.target = os.readlink(name, dir_fd=dirfd)
            except OSError:
                self.target = "?"

    def open(self):
        return open_file(self._dirfd, self._name, self.st)


def walk(path, skip=(), limit=MAX_ENTRIES):
    """Every entry under the folder `path`, sorted, parents first, never following a link (a link
    is yielded, not entered). Entries named in `skip` (a set, or a test of the name), at any depth,
    are left out with whatever they hold. Raises Refused for a link in `path` itself, TooMany past
    `limit` entries or MAX_DEPTH folders deep."""
    if not callable(skip):
        skip = skip.__contains__
    fd = open_folder(path)
    count = [0]
    try:
        yield from _walk(fd, "", skip, limit, count, 0)
    finally:
        os.close(fd)


def _walk(fd, prefix, skip, limit, count, depth):
    if depth > MAX_DEPTH:
        raise TooMany(f"{MAX_DEPTH} nested folders")
    names = []
    with os.scandir(fd) as it:
        for e in it:                    # counted as listed: a folder of a million names is not held
            names.append(e.name)
            if len(names) + count[0] > limit:
                raise TooMany(f"{limit} files and folders")
    names.sort()
    for name in names:
        if skip(name):
            continue
        count[0] += 1
        if count[0] > limit:
            raise TooMany(f"{limit} files and folders")
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        entry = Entry(prefix + name, st, fd, name)
        yield entry
        if entry.is_dir:
            try:
                sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | NOFOLLOW, dir_fd=fd)
            except OSError as e:
                if e.errno in (errno.ENOTDIR, errno.ELOOP):
                    raise Refused(f"{shown(prefix + name)} became a symbolic link while it was read") from None
                raise
            try:
                yield from _walk(sub, prefix + name + "/", skip, limit, count, depth + 1)
            finally:
                os.close(sub)


def refusal(folder, own=()):
    """Why the submission folder `folder` is not graded, or None: a link in its path, or a link
    inside it. A link named in `own` (an exercise's file name, at the top) is left to that
    exercise, which it costs alone. A repository's .git/ is its history, not the submission."""
    try:
        for entry in walk(folder, skip={".git"}):
            if entry.is_link and entry.rel not in own:
                return (f"{shown(entry.rel)} in the submission is a symbolic link (to {shown(entry.target)}): "
                        "a submission is a folder of regular files, and the grader follows no link")
    except Refused as e:
        return str(e)
    except TooMany as e:
        return f"the submission holds more than {e}"
    except (FileNotFoundError, NotADirectoryError):
        return None         # nothing there: every exercise is missing
    return None

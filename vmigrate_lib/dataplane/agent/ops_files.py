"""Small one-request operations on the served folder (stat, listdir, files, disks)."""

import base64
import errno
import os
import stat as stat_mod

from .sparse import data_regions
from .vmkfs import create_with_vmkfstools, descriptor_of


class FileOps(object):
    """Mixed into the Agent: ``self.path(rel)`` resolves inside the datastore root."""

    def op_ping(self, req):
        return {"ok": True}

    def op_statfs(self, req):
        st = os.statvfs(self.root)
        return {"free": st.f_bavail * st.f_frsize, "total": st.f_blocks * st.f_frsize}

    def op_stat(self, req):
        try:
            st = os.stat(self.path(req["path"]))
        except FileNotFoundError:
            return {"exists": False}
        return {"exists": True, "size": st.st_size, "allocated": st.st_blocks * 512,
                "is_dir": stat_mod.S_ISDIR(st.st_mode), "mtime_ns": st.st_mtime_ns}

    def op_listdir(self, req):
        return {"names": sorted(os.listdir(self.path(req["path"])))}

    def op_makedirs(self, req):
        full = self.path(req["path"])
        if not os.path.isdir(full):
            os.makedirs(full)
        return {"ok": True}

    def op_read_file(self, req):
        """The whole file; with ``limit``, refused when larger (a peek never reads a disk)."""
        with open(self.path(req["path"]), "rb") as f:
            limit = req.get("limit")
            if limit is not None and os.fstat(f.fileno()).st_size > limit:
                raise ValueError("{} is larger than {} bytes".format(req["path"], limit))
            data = f.read()
        return {"data": base64.b64encode(data).decode("ascii")}

    def op_write_file(self, req):
        """Write whole (temporary file, fsync, rename); ``exclusive`` never replaces a file.

        Exclusive means atomic: the complete temporary file is hard-linked to its name
        (``link`` fails with EEXIST when the name exists), so two agents racing for one
        claim cannot both win, and no reader ever sees half a file.  Where the file
        system has no hard links, ``O_EXCL`` creation gives the same exclusivity.
        """
        full = self.path(req["path"])
        data = base64.b64decode(req["data"])
        tmp = full + ".tmp-{}".format(os.getpid())
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if not req.get("exclusive"):
            os.rename(tmp, full)
            return {"ok": True}
        try:
            os.link(tmp, full)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV,
                                 errno.EMLINK, errno.ENOSYS):
                os.remove(tmp)
                raise
            os.remove(tmp)
            return self._create_exclusive(full, data)
        os.remove(tmp)
        return {"ok": True}

    @staticmethod
    def _create_exclusive(full, data):
        fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        return {"ok": True}

    def op_create_disk(self, req):
        """A new disk file: with ``format`` (thin | zeroedthick | eagerzeroedthick) and
        ``vmkfstools`` on this host, provisioned as that format (:mod:`.vmkfs`);
        otherwise sparse (``ftruncate``), i.e. allocated on write."""
        full = self.path(req["path"])
        fmt = req.get("format")
        tool = getattr(self, "storage", {}).get("vmkfstools")
        if fmt and tool and descriptor_of(full):
            return create_with_vmkfstools(tool, full, int(req["size"]), fmt)
        fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, int(req["size"]))
            os.fsync(fd)
        finally:
            os.close(fd)
        return {"ok": True}

    def op_grow_disk(self, req):
        """Extend a disk file sparsely to ``size``; never shrinks (idempotent)."""
        full = self.path(req["path"])
        size = int(req["size"])
        fd = os.open(full, os.O_WRONLY)
        try:
            current = os.fstat(fd).st_size
            if size < current:
                raise OSError(errno.EINVAL, "refusing to shrink a disk from {} to {} bytes".format(
                    current, size), req["path"])
            if size > current:
                os.ftruncate(fd, size)
                os.fsync(fd)
        finally:
            os.close(fd)
        return {"ok": True, "size": size, "was": current}

    def op_remove(self, req):
        full = self.path(req["path"])
        if os.path.isdir(full):
            os.rmdir(full)
        elif os.path.exists(full):
            os.remove(full)
        return {"ok": True}

    def op_allocated(self, req):
        fd = os.open(self.path(req["path"]), os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            return {"extents": data_regions(fd, 0, size)}
        finally:
            os.close(fd)

"""The agent's view of a frozen snapshot delta: its changed extents and their bytes.

The snapshot-delta mode (issue 12) keeps the previous cycle's snapshot open; at
the next cycle's snapshot that delta file is frozen and its grain table is
exactly what the guest wrote in between.  These ops read it where it lives
(``deltaformats``: SEsparse and vmfsSparse/COWD after QEMU's ``block/vmdk.c``).
"""

import base64
import os

from .deltaformats import open_delta

#: one ``read_delta`` answer at most (it travels as base64 in a JSON answer)
MAX_DELTA_READ = 4 * 1024 * 1024


class DeltaOps(object):
    """Mixed into the Agent: ``self.path(rel)`` resolves inside the datastore root."""

    _delta_cache = None  # (identity, DeltaFile): the last delta opened, for its reads

    def opened_delta(self, rel):
        """The delta at ``rel``, parsed once while the file stays the same (a frozen
        delta does not change; one that does is parsed again)."""
        full = self.path(rel)
        st = os.stat(full)
        ident = (full, st.st_ino, st.st_size, st.st_mtime_ns)
        cached = self._delta_cache
        if cached is not None and cached[0] == ident:
            return cached[1]
        delta = open_delta(full)
        if cached is not None:
            cached[1].close()
        self._delta_cache = (ident, delta)
        return delta

    def op_delta_extents(self, req):
        """``{"format", "capacity", "grain", "extents": [[offset, length, "data"|"zero"]]}``."""
        delta = self.opened_delta(req["path"])
        return {"format": delta.format, "capacity": delta.capacity, "grain": delta.grain,
                "extents": delta.extents()}

    def op_read_delta(self, req):
        """Guest bytes of a changed area, read from the delta file itself."""
        offset, length = int(req["offset"]), int(req["length"])
        if length > MAX_DELTA_READ:
            raise ValueError("read_delta of {} bytes: at most {} per request".format(
                length, MAX_DELTA_READ))
        data = self.opened_delta(req["path"]).read(offset, length)
        return {"data": base64.b64encode(data).decode("ascii")}

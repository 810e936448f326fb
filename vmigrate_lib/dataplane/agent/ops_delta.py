"""The agent's view of a frozen snapshot delta: its changed extents and their bytes.

The snapshot-delta mode (issue 12) keeps the previous cycle's snapshot open; at
the next cycle's snapshot that delta file is frozen and its grain table is
exactly what the guest wrote in between.  These ops read it where it lives
(``deltaformats``: SEsparse and vmfsSparse/COWD after QEMU's ``block/vmdk.c``).
"""

import base64

from .deltaformats import open_delta

#: one ``read_delta`` answer at most (it travels as base64 in a JSON answer)
MAX_DELTA_READ = 4 * 1024 * 1024


class DeltaOps(object):
    """Mixed into the Agent: ``self.path(rel)`` resolves inside the datastore root."""

    def op_delta_extents(self, req):
        """``{"format", "capacity", "grain", "extents": [[offset, length, "data"|"zero"]]}``."""
        with open_delta(self.path(req["path"])) as delta:
            return {"format": delta.format, "capacity": delta.capacity, "grain": delta.grain,
                    "extents": delta.extents()}

    def op_read_delta(self, req):
        """Guest bytes of a changed area, read from the delta file itself."""
        offset, length = int(req["offset"]), int(req["length"])
        if length > MAX_DELTA_READ:
            raise ValueError("read_delta of {} bytes: at most {} per request".format(
                length, MAX_DELTA_READ))
        with open_delta(self.path(req["path"])) as delta:
            data = delta.read(offset, length)
        return {"data": base64.b64encode(data).decode("ascii")}

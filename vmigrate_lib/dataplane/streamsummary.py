"""A stream's END summary as the source agent counts it: read into a
:class:`~.datastore.StreamSummary`, and added up over the attempts of a resumed stream."""

from __future__ import annotations

from typing import Any

from .datastore import StreamSummary

#: the packer's account in a stream's END (StreamSummary.packer)
PACKER = ("no_gain", "off_for_rate", "ldm_off", "stream", "level_max", "span_max")


def summary_of(raw: dict[str, Any]) -> StreamSummary:
    """A stream's END payload (``sent``, ``holes``, ``read``, ``wire``) as a StreamSummary."""
    return StreamSummary(sent=int(raw.get("sent", 0)), holes=int(raw.get("holes", 0)),
                         read=int(raw.get("read", 0)), wire=int(raw.get("wire", 0)),
                         codec=str(raw.get("codec") or ""), packed=int(raw.get("packed", 0)),
                         raw=int(raw.get("raw", 0)),
                         packer={k: int(raw[k]) for k in PACKER if k in raw})


#: a stream's END counts summed over the attempts of a resumed stream
SUMMED = ("sent", "holes", "read", "wire", "packed", "raw", "no_gain", "off_for_rate",
          "ldm_off", "stream")
#: ... and the packer's peaks (zstd's level, the longest joined frame), kept at their max
PEAKS = ("level_max", "span_max")


def add_summary(total: dict[str, Any], part: dict[str, Any]) -> None:
    """Add one attempt's END summary to a resumed stream's ``total``."""
    for key in SUMMED:
        total[key] = total.get(key, 0) + int(part.get(key, 0))
    for key in PEAKS:
        if key in part:
            total[key] = max(int(total.get(key, 0)), int(part[key]))
    total["codec"] = part.get("codec", "")


__all__ = ["PACKER", "PEAKS", "SUMMED", "add_summary", "summary_of"]

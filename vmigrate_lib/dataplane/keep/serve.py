"""The keeper's own process: ``python -m vmigrate_lib.dataplane.keep.serve``.

Started by ``vmigrate keep start`` in a session of its own, its spec (:mod:`.spec`, no
secret) on stdin.  It logs in to every host, installs or checks the agent file, starts
the spare agents, opens its sockets, then writes one line on stdout, ``READY {status}``
or ``ERROR {error}``, and closes stdout: the starting command reports that line and
exits.  Its log (stderr) is the file ``keeper-<pid>.log`` beside the sockets (0600):
who was served, who was refused, why it stopped; never a secret.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from typing import Any

from ...errors import KeeperError, VmigrateError
from .hold import HostHold
from .place import check_dir, keep_dir
from .server import Keeper
from .spec import settings_from


def build(spec: dict[str, Any]) -> tuple[Keeper, dict[str, str]]:
    holds = [HostHold(settings_from(h["settings"]), h["prefix"], h["digest"],
                      spares=int(spec["spares"])) for h in spec["hosts"]]
    if not holds:
        raise KeeperError("nothing to keep: no host of these params is served over SSH",
                          hint="a keeper serves lab-over-SSH and vsphere datastores")
    folder = check_dir(keep_dir(), create=True)
    keeper = Keeper(holds, folder, time.monotonic() + float(spec["seconds"]),
                    float(spec["idle"]))
    return keeper, {h["digest"]: h["name"] for h in spec["hosts"]}


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    spec = json.loads(sys.stdin.read())
    keeper = None
    try:
        keeper, names = build(spec)
        keeper.listen(names)  # first: refused at once when another keeper holds a host
        for hold, h in zip(keeper.holds, spec["hosts"], strict=True):
            hold.login()
            for root in h["roots"]:
                hold.refill(root)
    except VmigrateError as exc:
        if keeper is not None:
            keeper.close()
        print("ERROR " + json.dumps(exc.to_dict()), flush=True)
        return exc.exit_code
    signal.signal(signal.SIGTERM, lambda *_: keeper.stopping.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    print("READY " + json.dumps(keeper.status()), flush=True)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    logging.getLogger("vmigrate.keep").info("serving %s until %s", ", ".join(
        f"{h.settings.user}@{h.settings.host}:{h.settings.port}" for h in keeper.holds),
        time.ctime(keeper.expires))
    keeper.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The connection keeper: logins and agents held across commands (ControlMaster style).

OpenSSH's ``ControlMaster``/``ControlPersist`` (ssh_config(5)) keep one authenticated
connection in a background process and let later ``ssh`` commands open sessions on it
through a unix socket.  ``vmigrate keep start --for 30m -p PARAMS`` does the same for a
migration's hosts: a process of the operator's holds the SSH logins, keeps agents
started ahead, and hands one to each command that asks, so a command skips the logins
and the agent starts.  Opt-in: without a keeper every command connects as before.

    place    the operator's 0700 folder, socket names, the settings digest (no secret)
    wire     the request and answer lines, SO_PEERCRED
    spec     what a keeper holds, from a migration's params
    control  start a keeper, ask status, stop (``vmigrate keep``)
    hold     one host: logins, spare agents, the folders it serves (paramiko)
    server   the keeper's loop: sockets, checks, splices, expiry (paramiko)
    serve    the keeper's process entry point
    client   a command's transport through a keeper (:func:`open_kept`)

Only ``place``, ``wire``, ``spec`` and ``control`` are imported by a command that
finds no keeper.
"""

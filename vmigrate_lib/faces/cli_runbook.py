"""``vmigrate run sync|cutover`` and ``vmigrate evidence verify``: runbooks from the CLI.

The runbook checks its own parameters (the same cell a hand run executes), so
this face only reads the YAML file (the same file ``vmigrate sync``/``cutover``
take), applies ``--set`` overrides, adds ``--force`` for a cutover and hands the
mapping to the runner.  Refused parameters leave nothing behind (exit 2); every
run that starts, failed or not, leaves a sealed evidence folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import params as params_mod
from ..errors import ParameterError
from ..params.paramfile import read_params_file
from .common import Subcommands, WithParams, overrides, positive_duration_arg


def cmd_run(args: argparse.Namespace) -> int:
    # papermill and pandas take seconds to import: only this command needs them
    from .papermill_runner import run_runbook

    # read strictly here; run_runbook checks the parameters (the runbook's own check)
    # before it archives anything or starts a kernel
    raw = params_mod.merge(read_params_file(Path(args.params)), overrides(args))
    if "force" in raw:
        raise ParameterError("parameter force does not belong in a params file",
                             hint="overriding a no-go is decided per run: vmigrate run "
                             "cutover --force", parameter="force")
    if args.force:
        if args.runbook != "cutover":
            raise ParameterError("--force applies to the cutover runbook only",
                                 parameter="force")
        raw["force"] = True
    result = run_runbook(
        args.runbook, raw, params_file=Path(args.params),
        out_root=Path(args.evidence_dir) if args.evidence_dir else None,
        kernel_name=args.kernel, cell_timeout=args.timeout,
        stream=None if args.quiet else sys.stdout, raise_interrupt=False,
    )
    if result.redactions:
        print(f"vmigrate: warning: secret values were found and redacted in "
              f"{', '.join(sorted(result.redactions))}", file=sys.stderr)
    for note in result.notes:  # the signature's status, a runbook that differs from git
        plain = note.startswith(("signed", "unsigned: no signing key"))
        print(f"vmigrate: {'note' if plain else 'warning'}: {note}", file=sys.stderr)
    print(result.summary(), file=sys.stdout if result.ok else sys.stderr)
    print(f"evidence: {result.folder}")
    return result.exit_code


def cmd_evidence(args: argparse.Namespace) -> int:
    from ..audit.evidence import check_chain, verify_or_raise
    from ..audit.signing import check_signature

    folder = Path(args.dir)
    report = verify_or_raise(folder)
    chain = check_chain(folder, Path(args.journal) if args.journal else None)
    sig = check_signature(folder, Path(args.allowed_signers) if args.allowed_signers else None)
    print(f"evidence {args.dir} verified: {report.checked} files match the manifest; "
          f"{chain.line()}; {sig.line()}")
    return 0


def register(sub: Subcommands, with_params: WithParams) -> None:
    """Add ``run`` and ``evidence`` to the ``vmigrate`` parser."""
    p = with_params(sub.add_parser(
        "run", help="execute a runbook (papermill) and archive its evidence"))
    p.add_argument("runbook", choices=["sync", "cutover"])
    p.add_argument("--timeout", type=positive_duration_arg, default=None,
                   help="per-cell execution timeout (e.g. 30m); a timeout fails the run")
    p.add_argument("--kernel", default=None,
                   help="Jupyter kernel name (default: vmigrate, else python3)")
    p.add_argument("--force", action="store_true",
                   help="cutover: go even if go/no-go says no (recorded as forced)")
    p.add_argument("--evidence-dir", default=None,
                   help="where run folders go (default: <workspace>/evidence)")
    p.set_defaults(func=cmd_run)
    e = sub.add_parser("evidence", help="check archived evidence")
    esub = e.add_subparsers(dest="evidence_cmd", required=True)
    v = esub.add_parser("verify", help="fail if any file differs from the manifest")
    v.add_argument("dir", help="a run's evidence folder")
    v.add_argument("--allowed-signers", default=None, help="ssh-keygen allowed signers file "
                   "naming who may seal evidence (default: $VMIGRATE_ALLOWED_SIGNERS)")
    v.add_argument("--journal", default=None, help="the workspace journal that recorded the "
                   "archive (default: <workspace>/journal.jsonl beside <workspace>/evidence)")
    v.set_defaults(func=cmd_evidence)

"""DVC stage `check_params`: validate params.yaml before any other stage runs.

    python -m stages.check_params [--params params.yaml] [--out reports/params_check.txt]

DVC deletes a stage's outputs just before running it, and the stage validates its params only
then: a typo used to cost the last good reports (`cache: false`, so `dvc checkout` cannot bring
them back). Every stage depends on this stage's output, so DVC runs it first and stops on a bad
file with every output in place. The output is the same text whenever the file is valid, so a
params edit reruns only the stages that read the edited keys.
"""
from __future__ import annotations

import sys
from pathlib import Path

from fashion_edit.config import ParamsError, load_params
from fashion_edit.layout import PARAMS_CHECK
from fashion_edit.stage import stage_parser

VALID = "params.yaml is valid (fashion_edit/config.py)\n"


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__)
    parser.add_argument("--out", type=Path, default=PARAMS_CHECK)
    args = parser.parse_args(argv)
    try:
        load_params(args.params)
    except ParamsError as exc:
        print(f"check_params: error: {exc}\n(no stage ran: every output is as it was)", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(VALID)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The one base class of the errors a user can act on.

Each library error (bad params, a missing file, an unreachable tracking server, a full disk, ...) derives from
:class:`FashionEditError` and says in its message what went wrong and what to do; a stage prints it as one line
and exits 1 (:func:`fashion_edit.stage.run_stage`). Anything else is a bug and keeps its traceback.
"""


class FashionEditError(Exception):
    """An error whose message names the file or key and the fix."""

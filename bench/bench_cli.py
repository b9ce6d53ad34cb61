"""How the bench scripts end on bad input: one line, ``error: ...``, and exit code 2.

Each script's ``__main__`` block calls ``guarded(main)``. Bad input is a ``SeglabError``
(an unknown ``--set`` key, a missing config or data folder: the library's own one-line
message), a ``SystemExit`` with a message (the scripts' own checks, such as a run folder
that is gone) or a file named on the command line that does not exist. Anything else is a
bug in the script and keeps its traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

from seglab.errors import SeglabError


def guarded(main: Callable[[], None]) -> None:
    try:
        main()
    except SeglabError as exc:
        fail(exc.one_line())
    except FileNotFoundError as exc:
        fail(f"no such file or folder: {exc.filename}; check the path")
    except SystemExit as exc:
        if isinstance(exc.code, str):  # raise SystemExit("message"): bad input, said why
            fail(exc.code)
        raise  # argparse's usage errors (already exit 2) and plain exits


def fail(message: str) -> None:
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    raise SystemExit(2) from None


def read_records(paths: list[Path]) -> list[dict]:
    """The records of ``bench/quality.py --out`` files (JSON lines), in file and line order;
    a line that is not a JSON object is bad input, named by file and line."""
    records = []
    for path in map(Path, paths):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                record = error.msg
            if not isinstance(record, dict):
                raise SeglabError(
                    f"{path}:{number} is not a results record ({record})",
                    hint="give the JSON-lines files that bench/quality.py --out writes",
                )
            records.append(record)
    return records

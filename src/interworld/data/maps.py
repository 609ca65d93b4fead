"""The map split. Training and validation use only freedoom2 MAP01-MAP20 and freedoom1
E1M1-E2M9; freedoom2 MAP21-MAP32 and freedoom1 E3M1-E4M9 are reserved for the project's
final evaluation and are never used for training, validation or tuning."""

from __future__ import annotations

VAL = ("freedoom2:MAP19", "freedoom2:MAP20", "freedoom1:E2M8", "freedoom1:E2M9")
_ALLOWED = tuple(f"freedoom2:MAP{i:02d}" for i in range(1, 21)) + tuple(
    f"freedoom1:E{e}M{m}" for e in (1, 2) for m in range(1, 10))
TRAIN = tuple(m for m in _ALLOWED if m not in VAL)
RESERVED = tuple(f"freedoom2:MAP{i:02d}" for i in range(21, 33)) + tuple(
    f"freedoom1:E{e}M{m}" for e in (3, 4) for m in range(1, 10))


def _canonical(name: str) -> str:
    n = name.strip()
    if ":" not in n:  # "MAP01" -> freedoom2, "E1M1" -> freedoom1
        n = ("freedoom2:" if n.upper().startswith("MAP") else "freedoom1:") + n
    wad, m = n.split(":", 1)
    return f"{wad.lower()}:{m.upper()}"


def resolve(names, allow_reserved: bool = False) -> list[str]:
    """Map ids from names: ids like 'freedoom2:MAP01' or 'E1M1', or the words 'train' / 'val'.

    Reserved maps are refused unless `allow_reserved` (the final evaluation only)."""
    if isinstance(names, str):
        names = [n for n in names.replace(",", " ").split() if n]
    out: list[str] = []
    for name in names:
        if name in ("train", "val"):
            out += TRAIN if name == "train" else VAL
            continue
        m = _canonical(name)
        if m in RESERVED and not allow_reserved:
            raise ValueError(f"map {name!r} is reserved for the final evaluation: never train, validate or tune "
                             f"on it (reserved: freedoom2 MAP21-MAP32, freedoom1 E3M1-E4M9)")
        if m not in _ALLOWED and m not in RESERVED:
            raise ValueError(f"unknown map {name!r}; use freedoom2:MAP01-MAP20, freedoom1:E1M1-E2M9, 'train' or 'val'")
        out.append(m)
    if not out:
        raise ValueError("no maps given")
    return list(dict.fromkeys(out))

"""The shell helpers the GPU lease scripts share (scripts/lease_data.sh), run in bash here."""

import subprocess
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def check_return(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", f'source "{SCRIPTS}/lease_data.sh" && check_return "{folder}"'],
                          capture_output=True, text=True)


def test_check_return_warns_when_a_call_would_leave_files_behind(tmp_path):
    # what one call brings back: 8 files of up to 16 MiB, 64 MiB together (files two folders down count)
    ok = tmp_path / "ok"
    (ok / "e").mkdir(parents=True)
    for i in range(7):
        (ok / f"part{i}").write_bytes(b"x" * 1000)
    (ok / "e" / "eval.tgz").write_bytes(b"x" * 1000)
    r = check_return(ok)
    assert r.returncode == 0 and r.stderr == ""

    (ok / "e" / "one_too_many").write_bytes(b"x")
    r = check_return(ok)
    assert r.returncode == 1 and "9 files" in r.stderr

    big = tmp_path / "big"  # five 15 MB parts: each may come back, together they may not (run 26)
    big.mkdir()
    for i in range(5):
        with open(big / f"world_fp16.part0{i}", "wb") as f:
            f.truncate(15 * 2**20)
    r = check_return(big)
    assert r.returncode == 1 and "75 MiB" in r.stderr

    huge = tmp_path / "huge"
    huge.mkdir()
    with open(huge / "model.safetensors", "wb") as f:
        f.truncate(17 * 2**20)
    r = check_return(huge)
    assert r.returncode == 1 and "1 over 16 MiB" in r.stderr

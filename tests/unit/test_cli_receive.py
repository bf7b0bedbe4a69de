"""`alertd receive`: a port in use is one line and exit 1; "receiving on" is said only once it listens."""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from alertd.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_a_port_in_use_is_one_error_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        assert main(["receive", "--listen", f"127.0.0.1:{port}"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"alertd: cannot listen on 127.0.0.1:{port}: "), err
    assert len(err.splitlines()) == 1 and "receiving on" not in err


def test_receiving_on_names_the_bound_port_and_it_already_answers() -> None:
    with subprocess.Popen([sys.executable, "-m", "alertd", "receive", "--listen", "127.0.0.1:0"], cwd=REPO,
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as proc:
        try:
            assert proc.stderr is not None and proc.stdout is not None
            line = proc.stderr.readline()
            assert line.startswith("receiving on http://127.0.0.1:"), line
            port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
            assert port != 0
            # no retry loop: once the line is out, the socket already listens
            request = urllib.request.Request(f"http://127.0.0.1:{port}/hook", data=b'{"event": "pr.x"}',
                                             method="POST")
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200
            assert "pr.x" in proc.stdout.readline()
        finally:
            proc.terminate()  # only the receiver this test started
            proc.communicate(timeout=10)

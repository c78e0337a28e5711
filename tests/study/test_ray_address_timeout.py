"""A Ray address where something that is not Ray listens is refused in one line within a bounded time (issue 27,
N12): a listener that accepts and says nothing, one that answers garbage, one that closes at once."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from compress.cli import main
from compress.study.ray_executor import RayOptions, _check_reachable

DATA = "synthetic:n=240,classes=3,size=12"


class Listener:
    """A TCP listener on loopback that is not Ray: ``behaviour`` is "silent" (accepts, says nothing), "garbage"
    (answers an HTTP/1 error), "close" (accepts and closes) or "http2" (answers as a gRPC server would)."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.behaviour == "garbage":
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            elif self.behaviour == "http2":
                conn.sendall(bytes([0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100]))   # SETTINGS, max streams 100
            elif self.behaviour == "close":
                conn.close()
                continue
            self.conns.append(conn)   # kept open, silent from here on

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.fixture
def listener(request):
    server = Listener(request.param)
    yield server
    server.close()


@pytest.mark.parametrize("listener, match", [("silent", "did not answer within 1 s"), ("garbage", "not gRPC"),
                                             ("close", "closed it")], indirect=["listener"])
def test_a_listener_that_is_not_ray_is_refused_in_bounded_time(listener, match):
    start = time.monotonic()
    with pytest.raises(ValueError, match=match) as info:
        _check_reachable(listener.address, 1.0)
    assert time.monotonic() - start < 5
    assert f"no Ray cluster answers at address '{listener.address}'" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("listener", ["http2"], indirect=True)
def test_a_grpc_server_passes_the_check(listener):
    _check_reachable(listener.address, 5.0)
    _check_reachable(f"ray://{listener.address}", 5.0)


@pytest.mark.parametrize("listener", ["silent"], indirect=True)
def test_the_executor_uses_its_connect_timeout(listener):
    from compress.study import RayExecutor

    pytest.importorskip("ray")   # without Ray, RayExecutor refuses before it looks at the address
    start = time.monotonic()
    with pytest.raises(ValueError, match=f"'{listener.address}'.*within 0.5 s"):
        RayExecutor(RayOptions(address=listener.address, connect_timeout_s=0.5))
    assert time.monotonic() - start < 5


@pytest.mark.parametrize("listener", ["garbage", "close"], indirect=True)
def test_cli_refuses_in_one_line_before_any_work(listener, tmp_path, capsys):
    pytest.importorskip("ray")
    start = time.monotonic()
    status = main(["sweep", "--data", DATA, "--families", "mlp", "--budgets", "5k", "--seeds", "1", "--epochs", "1",
                   "--no-latency", "--out", str(tmp_path / "s"), "--executor", "ray", "--address", listener.address])
    assert status == 2 and time.monotonic() - start < 30
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and listener.address in err[0] and "not a Ray head" in err[0]
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), True, "30", 10_000])
def test_bad_connect_timeout(value):
    with pytest.raises(ValueError, match="connect_timeout_s"):
        RayOptions(connect_timeout_s=value)

import socket

import pytest

from alertd.listening import ListenError, bind_listen


def test_a_port_in_use_is_one_clear_error_and_no_socket_is_left_open():
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        with pytest.raises(ListenError, match=rf"^cannot listen on 127\.0\.0\.1:{port}: .*in use"):
            bind_listen("127.0.0.1", port)


def test_an_address_this_machine_does_not_have_is_refused_without_sending_anything():
    with pytest.raises(ListenError, match=r"^cannot listen on 192\.0\.2\.1:8040: "):
        bind_listen("192.0.2.1", 8040)  # TEST-NET-1: never assigned here; bind fails locally


def test_bound_sockets_listen_and_do_not_block():
    [sock] = bind_listen("127.0.0.1", 0)
    try:
        assert sock.getblocking() is False
        with socket.create_connection(sock.getsockname(), timeout=2):
            pass  # the kernel accepts into the backlog: it listens
    finally:
        sock.close()

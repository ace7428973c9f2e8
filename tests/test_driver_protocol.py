"""The driver loop against a socket pair on which the test plays i-PI: message layout, extras,
and what happens on a non-finite result (never sent; the socket is closed, exit status 1)."""

import json
import socket
import threading

import numpy as np

from ipi_jlcdm.electronic.results import EngineResult
from ipi_jlcdm.md.driver import EXIT_EOF, EXIT_ERROR, EXIT_OK, DriverLoop
from ipi_jlcdm.md.ipi_socket import IPISocket, header


def fake_result(positions, bead, value=1.0):
    return EngineResult(energy=-1.5 * value, forces=positions * value, dipole=np.array([0.1, 0.2, 0.3]) * value,
                        gap=0.25, residual=0.01, info={"fallback": 0})


def posdata(positions):
    cell = np.eye(3) * 20.0
    return (header("POSDATA") + cell.astype("<f8").tobytes() + np.linalg.inv(cell).astype("<f8").tobytes()
            + np.int32(len(positions)).astype("<i4").tobytes() + positions.astype("<f8").tobytes())


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def run_loop(compute, n_atoms=2):
    ours, theirs = socket.socketpair()
    loop = DriverLoop(IPISocket(theirs, "socketpair"), compute, n_atoms, "jlcdm")
    result = {}
    thread = threading.Thread(target=lambda: result.update(code=loop.run()))
    thread.start()
    return ours, thread, result


def test_forceready_payload_and_extras():
    ours, thread, result = run_loop(fake_result)
    positions = np.array([[0.0, 0.0, 0.0], [1.4, 0.0, 0.0]])
    ours.sendall(header("STATUS"))
    assert recv_exact(ours, 12) == header("NEEDINIT")
    ours.sendall(header("INIT") + np.int32(3).tobytes() + np.int32(0).tobytes())
    keys = []
    for step in range(2):
        ours.sendall(header("STATUS"))
        assert recv_exact(ours, 12) == header("READY")
        ours.sendall(posdata(positions + step))
        ours.sendall(header("STATUS"))
        assert recv_exact(ours, 12) == header("HAVEDATA")
        ours.sendall(header("GETFORCE"))
        assert recv_exact(ours, 12) == header("FORCEREADY")
        energy = np.frombuffer(recv_exact(ours, 8), "<f8")[0]
        n_atoms = np.frombuffer(recv_exact(ours, 4), "<i4")[0]
        forces = np.frombuffer(recv_exact(ours, 8 * 3 * n_atoms), "<f8").reshape(n_atoms, 3)
        virial = np.frombuffer(recv_exact(ours, 72), "<f8")
        length = np.frombuffer(recv_exact(ours, 4), "<i4")[0]
        extras = json.loads(recv_exact(ours, length))
        assert energy == -1.5 and n_atoms == 2 and np.all(virial == 0)
        np.testing.assert_array_equal(forces, positions + step)
        assert extras["dipole"] == [0.1, 0.2, 0.3] and "raw" not in extras
        assert extras["dipole_change"] == 0.0  # the fake engine's dipole does not move
        keys.append(sorted(extras))
    assert keys[0] == keys[1]  # the same keys every step
    ours.sendall(header("EXIT"))
    thread.join(10)
    assert result["code"] == EXIT_OK


def test_nan_is_never_sent():
    ours, thread, result = run_loop(lambda pos, bead: fake_result(pos, bead, value=np.nan))
    ours.sendall(header("INIT") + np.int32(0).tobytes() + np.int32(0).tobytes())
    ours.sendall(posdata(np.zeros((2, 3))))
    ours.sendall(header("GETFORCE"))
    thread.join(10)
    assert result["code"] == EXIT_ERROR
    ours.settimeout(5)
    assert ours.recv(100) == b""  # closed without a FORCEREADY


def test_end_of_file_and_wrong_atom_count():
    ours, thread, result = run_loop(fake_result)
    ours.close()  # i-PI vanished
    thread.join(10)
    assert result["code"] == EXIT_EOF
    ours, thread, result = run_loop(fake_result, n_atoms=3)
    ours.sendall(header("INIT") + np.int32(0).tobytes() + np.int32(0).tobytes())
    ours.sendall(posdata(np.zeros((2, 3))))
    thread.join(10)
    assert result["code"] == EXIT_ERROR

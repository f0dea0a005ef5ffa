"""What uploads can take from a real server: images of the costliest kind the pixel limit allows,
sent at once by several people, against a daphne process with the default settings. Its peak
memory (VmHWM, what the kernel saw at worst) stays within the README's bound."""

import threading
from collections import Counter

from chat.tests.files import blank_png, upload_over_http
from chat.tests.test_outages import sign_in
from testsupport.servers import DaphneServer

MIB = 1024 * 1024
# The README's bound: each image being decoded takes at most this much more than an idle process,
# and a process decodes CHAT_UPLOAD_DECODES (2) at once.
PER_DECODE = 128 * MIB
DECODES = 2
PEOPLE = 4
# 5000 by 5000: the default CHAT_UPLOAD_MAX_PIXELS, RGBA: 100 MB decoded, 97 KB sent.
WORST = blank_png(5000, 5000)


def peak_memory(server: DaphneServer) -> int:
    assert server.process is not None
    with open(f"/proc/{server.process.pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM line")


def send_at_once(server: DaphneServer, uploads: list[tuple[str, bytes]]) -> list[tuple[int, str]]:
    """Each (session, file) from its own connection, all released at the same moment."""
    answers: list[tuple[int, str]] = [(0, "")] * len(uploads)
    start = threading.Barrier(len(uploads))

    def send(index: int) -> None:
        session, content = uploads[index]
        start.wait()
        answers[index] = upload_over_http(server.url, session, content, f"blank{index}.png")

    threads = [threading.Thread(target=send, args=(index,)) for index in range(len(uploads))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_worst_case_images_sent_at_once_keep_the_server_within_its_stated_memory(
    start_daphne, site_env: dict[str, str]
) -> None:
    # Long enough a wait that every first upload gets its turn on a busy machine.
    server = start_daphne(CHAT_UPLOAD_DECODE_WAIT_SECONDS="120")
    sessions = [sign_in(site_env)[1] for _ in range(PEOPLE)]
    warm_up = upload_over_http(server.url, sessions[0], blank_png(64, 64), "warm-up.png")
    assert warm_up[0] == 200, warm_up[1][-500:]
    idle = peak_memory(server)

    # Everyone sends two: the second of each while their first is still being decoded.
    answers = send_at_once(server, [(session, WORST) for session in sessions for _ in range(2)])

    grown = peak_memory(server) - idle
    assert grown <= DECODES * PER_DECODE, (
        f"the server's peak grew by {grown // MIB} MiB, over {DECODES} times {PER_DECODE // MIB} MiB"
    )
    statuses = Counter(status for status, _ in answers)
    assert statuses == {200: PEOPLE, 429: PEOPLE}, statuses
    assert sum("Another upload of yours is still being processed" in page for _, page in answers) == PEOPLE

"""8 concurrent clients x 20 pipelined jobs: every reply reaches its own job, nothing is lost."""
from __future__ import annotations

import threading

import numpy as np

from lama_backend.client import LamaClient
from lama_backend.server import IdentityInpainter
from tests.helpers.server import make_job, running_server

CLIENTS = 8
JOBS = 20


def run_client(address: str, index: int, outcomes: dict) -> None:
    rng = np.random.default_rng(index)
    implementation = "pure" if index % 2 else "zmq"
    with LamaClient(address, implementation=implementation) as client:
        jobs = {}
        for number in range(JOBS):
            layout = ["RGBA", "BGR", "RGB", "BGRA"][number % 4]
            dtype = ["u8", "u16"][number % 2]
            request, _, _ = make_job(rng, int(rng.integers(8, 140)), int(rng.integers(8, 140)), layout, dtype, 64)
            request.job_id = f"client{index}-job{number}"
            jobs[client.submit(request)] = request
        matched = 0
        for job_id in rng.permutation(list(jobs)):  # wait in an order unrelated to submission
            request = jobs[job_id]
            result = client.wait(str(job_id))
            assert result.job_id == job_id == request.job_id and result.header["id"] == job_id
            assert (result.width, result.height, result.layout, result.dtype) == (
                request.width, request.height, request.layout, request.dtype)
            assert result.pixels == bytes(request.pixels)  # identity model: the job's own pixels
            matched += 1
        outcomes[index] = matched


def test_eight_clients_twenty_jobs_each_all_matched():
    with running_server(IdentityInpainter(), max_queued_per_client=JOBS, max_queued_total=CLIENTS * JOBS) as server:
        outcomes: dict[int, int] = {}
        errors: list[BaseException] = []

        def guarded(index: int) -> None:
            try:
                run_client(server.address, index, outcomes)
            except BaseException as exc:  # surfaced below with the client's index
                errors.append(exc)

        threads = [threading.Thread(target=guarded, args=(i,)) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors, errors
        assert outcomes == {i: JOBS for i in range(CLIENTS)}
        assert server.stats["jobs"] == CLIENTS * JOBS and server.stats["errors"] == 0
        assert not server.pending

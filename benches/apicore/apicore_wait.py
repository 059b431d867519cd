"""Wait for the operations named in a JSON-lines file with Google's Python api-core, as a
Python service would: one google.api_core.operation future per name, all waited at once.

    python apicore_wait.py HOST:PORT names.jsonl threads|asyncio

threads: result() on a thread each (api-core's sync futures); asyncio: the async client
and futures, gathered. Prints the CPU this process used after its imports.
"""

import json
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
from google.api_core import operation, operation_async, operations_v1
from google.cloud import vision_v1
from google.longrunning import operations_pb2


def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main():
    endpoint, path, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    names = [json.loads(line)["name"] for line in open(path) if line.strip()]
    before, start = cpu(), time.monotonic()
    if mode == "threads":
        client = operations_v1.OperationsClient(grpc.insecure_channel(endpoint))
        ops = [
            operation.from_gapic(
                operations_pb2.Operation(name=name),
                client,
                vision_v1.PurgeProductsRequest,
                metadata_type=vision_v1.BatchOperationMetadata,
            )
            for name in names
        ]
        with ThreadPoolExecutor(max_workers=len(ops)) as pool:
            results = list(pool.map(lambda op: op.result(timeout=600), ops))
    elif mode == "asyncio":
        import asyncio

        async def wait_all():
            client = operations_v1.OperationsAsyncClient(grpc.aio.insecure_channel(endpoint))
            ops = [
                operation_async.from_gapic(
                    operations_pb2.Operation(name=name),
                    client,
                    vision_v1.PurgeProductsRequest,
                    metadata_type=vision_v1.BatchOperationMetadata,
                )
                for name in names
            ]
            return await asyncio.gather(*(op.result() for op in ops))

        results = asyncio.run(wait_all())
    else:
        sys.exit(f"unknown mode {mode!r}: threads or asyncio")
    print(
        f"{len(results)} done, wall {time.monotonic() - start:.2f} s, "
        f"cpu after imports {cpu() - before:.2f} s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()

"""An Operations server built from Google's published stubs (grpcio, googleapis-common-protos'
google.longrunning.operations_pb2_grpc), for the side-by-side of issue #24.

    python grpcio_server.py --ops N --spread S --names names.jsonl [--no-wait] [--no-list]

It holds N Vision PurgeProducts operations under one collection,
projects/p/locations/us-west1/operations/<id>, and writes their names to --names as JSON
lines. Each operation's clock starts the first time a client asks about it (Get, Wait, or a
List page that shows it); it is done a random 0..S seconds later, with Vision's documented
response (the PurgeProductsRequest echoed) and BatchOperationMetadata. WaitOperation blocks
until done or its timeout; ListOperations pages the collection by offset. --no-wait and
--no-list answer those RPCs UNIMPLEMENTED, as most Google APIs answer WaitOperation.

It prints "listening on HOST:PORT" when ready; on SIGTERM or SIGINT it stops and prints
"served get=G wait=W list=L" to stderr.
"""

import argparse
import asyncio
import json
import random
import signal
import sys
import time

import grpc
from google.cloud import vision_v1
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import any_pb2, timestamp_pb2

PARENT = "projects/p/locations/us-west1"
COLLECTION = PARENT + "/operations"
PURGE_URL = "type.googleapis.com/google.cloud.vision.v1.PurgeProductsRequest"
METADATA_URL = "type.googleapis.com/google.cloud.vision.v1.BatchOperationMetadata"


class Op:
    __slots__ = ("name", "delay", "done_at", "done", "submitted")

    def __init__(self, name, delay):
        self.name = name
        self.delay = delay
        self.done_at = None
        self.done = None
        self.submitted = time.time()


def any_of(url, message_type, message):
    return any_pb2.Any(type_url=url, value=message_type.serialize(message))


class Operations(operations_pb2_grpc.OperationsServicer):
    def __init__(self, ops, spread, wait, list_):
        self.ops = {}
        self.order = []
        rng = random.Random(24)
        for i in range(ops):
            name = "%s/%016x" % (COLLECTION, rng.getrandbits(63))
            self.ops[name] = Op(name, rng.uniform(0, spread))
            self.order.append(name)
        self.wait = wait
        self.list = list_
        self.served = {"get": 0, "wait": 0, "list": 0}
        self.purge = vision_v1.PurgeProductsRequest(parent=PARENT, delete_orphan_products=True)

    def touch(self, op):
        """Starts the operation's clock at the first look."""
        if op.done_at is None:
            loop = asyncio.get_running_loop()
            op.done_at = loop.time() + op.delay
            op.done = asyncio.Event()
            loop.call_at(op.done_at, op.done.set)

    def snapshot(self, op):
        finished = op.done.is_set()
        state = vision_v1.BatchOperationMetadata.State
        metadata = vision_v1.BatchOperationMetadata(
            state=state.SUCCESSFUL if finished else state.PROCESSING,
            submit_time=timestamp_pb2.Timestamp(seconds=int(op.submitted)),
        )
        snapshot = operations_pb2.Operation(
            name=op.name,
            done=finished,
            metadata=any_of(METADATA_URL, vision_v1.BatchOperationMetadata, metadata),
        )
        if finished:
            snapshot.response.CopyFrom(any_of(PURGE_URL, vision_v1.PurgeProductsRequest, self.purge))
        return snapshot

    async def find(self, name, context):
        op = self.ops.get(name)
        if op is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no operation %r" % name)
        self.touch(op)
        return op

    async def GetOperation(self, request, context):
        self.served["get"] += 1
        return self.snapshot(await self.find(request.name, context))

    async def WaitOperation(self, request, context):
        self.served["wait"] += 1
        if not self.wait:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "WaitOperation is not implemented")
        op = await self.find(request.name, context)
        timeout = request.timeout.ToTimedelta().total_seconds() if request.HasField("timeout") else 60
        try:
            await asyncio.wait_for(op.done.wait(), timeout=max(timeout, 0))
        except asyncio.TimeoutError:
            pass
        return self.snapshot(op)

    async def ListOperations(self, request, context):
        self.served["list"] += 1
        if not self.list:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "ListOperations is not implemented")
        if request.name not in (PARENT, COLLECTION):
            await context.abort(grpc.StatusCode.NOT_FOUND, "no collection %r" % request.name)
        size = request.page_size if 0 < request.page_size <= 1000 else 1000
        start = int(request.page_token or 0)
        page = self.order[start : start + size]
        for name in page:
            self.touch(self.ops[name])
        reply = operations_pb2.ListOperationsResponse(
            operations=[self.snapshot(self.ops[name]) for name in page]
        )
        if start + size < len(self.order):
            reply.next_page_token = str(start + size)
        return reply

    async def CancelOperation(self, request, context):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not in this benchmark")

    async def DeleteOperation(self, request, context):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not in this benchmark")


async def serve(args):
    service = Operations(args.ops, args.spread, not args.no_wait, not args.no_list)
    with open(args.names, "w") as names:
        for name in service.order:
            names.write(json.dumps({"name": name}) + "\n")
    # No stream limit: at Google's 100 a connection, the floor (one connection, no retries)
    # fails its 101st concurrent call with REFUSED_STREAM.
    server = grpc.aio.server()
    operations_pb2_grpc.add_OperationsServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:%d" % args.port)
    await server.start()
    print("listening on 127.0.0.1:%d" % port, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(0)
    served = service.served
    print("served get=%d wait=%d list=%d" % (served["get"], served["wait"], served["list"]), file=sys.stderr, flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ops", type=int, default=1000)
    parser.add_argument("--spread", type=float, default=8.0)
    parser.add_argument("--names", required=True)
    parser.add_argument("--no-wait", action="store_true")
    parser.add_argument("--no-list", action="store_true")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()

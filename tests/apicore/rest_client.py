"""Google's Python api-core (operations_v1's REST transport) against the fake's REST surface.

Usage: rest_client.py HOST:PORT PARENT RUNNING FAILED

Prints one JSON line per step, for tests/library/rest.rs to check.
"""
import json
import sys

from google.api_core import exceptions, operations_v1
from google.api_core.operations_v1.transports.rest import OperationsRestTransport
from google.auth.credentials import AnonymousCredentials

# Vision's types, so that the operations' metadata (an `Any`) parses, as in a Vision user's program.
import google.cloud.vision_v1  # noqa: F401

host, parent, running, failed = sys.argv[1:5]
OP = "/v1/{name=projects/*/locations/*/operations/*}"
http_options = {
    "google.longrunning.Operations.GetOperation": [{"method": "get", "uri": OP}],
    "google.longrunning.Operations.ListOperations": [
        {"method": "get", "uri": "/v1/{name=projects/*/locations/*}/operations"}
    ],
    "google.longrunning.Operations.CancelOperation": [
        {"method": "post", "uri": OP + ":cancel", "body": "*"}
    ],
    "google.longrunning.Operations.DeleteOperation": [{"method": "delete", "uri": OP}],
}
transport = OperationsRestTransport(
    host=host if host.startswith("http") else "http://" + host,
    credentials=AnonymousCredentials(),
    url_scheme="http",
    http_options=http_options,
)
client = operations_v1.AbstractOperationsClient(transport=transport)


def say(**fields):
    print(json.dumps(fields), flush=True)


op = client.get_operation(running)
say(step="get", name=op.name, done=op.done)
op = client.get_operation(failed)
say(step="get failed", name=op.name, done=op.done, code=op.error.code, message=op.error.message)
names = sorted(o.name for o in client.list_operations(name=parent, filter_=""))
say(step="list", names=names)
client.cancel_operation(running)
op = client.get_operation(running)
say(step="cancelled", done=op.done, code=op.error.code)
client.delete_operation(running)
try:
    client.get_operation(running)
    say(step="deleted", error=None)
except exceptions.NotFound as err:
    say(step="deleted", error="NotFound", message=err.message)

"""Schemathesis hooks for scripts/contract: every operation that needs a token gets a fresh
one, so an operation that logs the device out (logout, removing a device) cannot leave the
rest of the run unauthorised. The account is made once per run."""

import json
import os
import urllib.request
import uuid

import schemathesis

BASE = os.environ["CONFAB_URL"]
USERNAME = "contract-" + uuid.uuid4().hex[:12]
PASSWORD = "contract-" + uuid.uuid4().hex


def post(path, body):
    request = urllib.request.Request(
        BASE + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


post("/v1/auth/signup", {"username": USERNAME, "password": PASSWORD})


@schemathesis.auth(refresh_interval=None)
class FreshDevice:
    def get(self, case, ctx):
        body = {"username": USERNAME, "password": PASSWORD, "device_name": "schemathesis"}
        return post("/v1/auth/login", body)["token"]

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"

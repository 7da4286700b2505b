#!/usr/bin/env python3
"""A non-C++ client against `chai serve`: Python grpcio with stubs generated
from proto/chai/v1/chai.proto at test time.

Starts the server (the `chai` binary given by --chai) on ephemeral ports with
the default model and checks health, GetModelInfo, Tokenize/Detokenize, a
greedy Generate stream against `chai generate --json` (the single-sequence
path), a bad request's status code, and a clean SIGTERM exit.

Exits 77 (ctest SKIP_RETURN_CODE) when grpcio/protobuf or a protoc with a
Python gRPC plugin is missing: install python3-grpcio python3-protobuf
protobuf-compiler protobuf-compiler-grpc (deploy/setup.sh does).
"""
import argparse
import importlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SKIP = 77


def skip(why):
    print(f"SKIP: {why}")
    sys.exit(SKIP)


def generate_stubs(out_dir, source_dir):
    protos = [
        (os.path.join(source_dir, "proto"), "chai/v1/chai.proto"),
        (os.path.join(source_dir, "server/grpc/proto"), "grpc/health/v1/health.proto"),
    ]
    try:
        from grpc_tools import protoc as grpc_protoc  # PyPI grpcio-tools, if present

        for inc, rel in protos:
            rc = grpc_protoc.main(["protoc", f"-I{inc}", f"--python_out={out_dir}",
                                   f"--grpc_python_out={out_dir}", rel])
            if rc != 0:
                raise RuntimeError(f"grpc_tools.protoc failed on {rel}")
        return
    except ImportError:
        pass
    protoc = shutil.which("protoc")
    plugin = shutil.which("grpc_python_plugin")
    if not protoc or not plugin:
        skip("no grpc_tools and no protoc + grpc_python_plugin to generate Python stubs")
    for inc, rel in protos:
        subprocess.run([protoc, f"-I{inc}", f"--python_out={out_dir}",
                        f"--grpc_python_out={out_dir}", f"--plugin=protoc-gen-grpc_python={plugin}",
                        rel], check=True)


class Server:
    def __init__(self, chai, model):
        self.proc = subprocess.Popen(
            [chai, "serve", "--model", model, "--host", "127.0.0.1", "--port", "0",
             "--metrics-port", "-1", "--max-model-len", "512", "--kv-cache-bytes", "150000000",
             "--threads", "2", "--drain-grace", "0s"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.target = None
        deadline = time.time() + 60
        while time.time() < deadline and self.target is None:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if ready:
                line = self.proc.stdout.readline()
                if not line:
                    break
                if line.startswith("serving on "):
                    self.target = line[len("serving on "):].strip()
        if self.target is None:
            self.proc.kill()
            raise RuntimeError("server did not start: " + self.proc.stderr.read())

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--chai", required=True)
    ap.add_argument("--source-dir", required=True)
    args = ap.parse_args()
    try:
        import grpc  # noqa: F401
        import google.protobuf  # noqa: F401
    except ImportError as e:
        skip(f"Python gRPC missing ({e}); install python3-grpcio python3-protobuf")
    import grpc

    model = os.path.join(args.source_dir, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
    if not os.path.exists(model):
        print(f"FAIL: default model missing at {model}: run deploy/setup.sh")
        return 1

    stubs = tempfile.mkdtemp(prefix="chai_py_stubs_")
    generate_stubs(stubs, args.source_dir)
    sys.path.insert(0, stubs)
    chai_pb2 = importlib.import_module("chai.v1.chai_pb2")
    chai_pb2_grpc = importlib.import_module("chai.v1.chai_pb2_grpc")
    # The generated health stubs live in a package named "grpc", which the
    # grpcio package shadows: load the messages by path and call the method
    # through the channel directly.
    health_pb2 = _load(os.path.join(stubs, "grpc", "health", "v1", "health_pb2.py"),
                       "chai_health_pb2")

    passed = failed = 0

    def check(name, cond, detail=""):
        nonlocal passed, failed
        if cond:
            passed += 1
            print(f"ok   {name}")
        else:
            failed += 1
            print(f"FAIL {name} {detail}")

    server = Server(args.chai, model)
    try:
        channel = grpc.insecure_channel(server.target)
        stub = chai_pb2_grpc.ChaiServiceStub(channel)

        health_check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString)
        h = health_check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        check("health SERVING", h.status == health_pb2.HealthCheckResponse.SERVING, str(h))

        info = stub.GetModelInfo(chai_pb2.GetModelInfoRequest(), timeout=10)
        check("model info shape",
              (info.vocab_size, info.n_layers, info.n_heads, info.n_kv_heads, info.head_dim,
               info.dim, info.context_length) == (49152, 30, 9, 3, 64, 576, 512), str(info))

        prompt = "The capital of France is"
        tok = stub.Tokenize(chai_pb2.TokenizeRequest(text=prompt), timeout=10)
        detok = stub.Detokenize(chai_pb2.DetokenizeRequest(token_ids=tok.token_ids), timeout=10)
        check("tokenize/detokenize round trip", detok.text == prompt, repr(detok.text))

        req = chai_pb2.GenerateRequest(
            text=prompt, request_id="py-1",
            sampling=chai_pb2.SamplingParams(temperature=0.0),
            stopping=chai_pb2.StoppingParams(max_tokens=12), logprobs=2)
        ids, text, complete, logprobs, echoed = [], "", None, [], True
        for msg in stub.Generate(req, timeout=120):
            echoed = echoed and msg.request_id == "py-1"
            ids.extend(msg.token_ids)
            text += msg.text
            logprobs.extend(msg.logprobs)
            if msg.HasField("complete"):
                complete = msg.complete
        check("every message echoes request_id", echoed)
        check("stream completes", complete is not None)
        check("usage counts the streamed tokens",
              complete is not None and complete.usage.completion_tokens == len(ids)
              and complete.usage.prompt_tokens == len(tok.token_ids), str(complete))
        check("one logprob entry per token with 2 alternatives",
              len(logprobs) == len(ids) and all(len(lp.top) == 2 for lp in logprobs))
        check("greedy picks the top alternative",
              all(lp.token_id == lp.top[0].token_id for lp in logprobs))
        whole = stub.Detokenize(chai_pb2.DetokenizeRequest(token_ids=ids), timeout=10).text
        check("streamed text is the tokens' text", text == whole, f"{text!r} vs {whole!r}")

        ref = subprocess.run(
            [args.chai, "generate", "--model", model, "--prompt", prompt, "--temperature", "0",
             "--max-tokens", "12", "--json", "--threads", "2"],
            capture_output=True, text=True, timeout=300)
        ref_ids = [json.loads(l)["id"] for l in ref.stdout.splitlines()
                   if l.strip() and "id" in json.loads(l)]
        check("same tokens as `chai generate`", ids == ref_ids, f"{ids} vs {ref_ids}")

        try:
            list(stub.Generate(chai_pb2.GenerateRequest(
                text="hi", sampling=chai_pb2.SamplingParams(temperature=-1.0)), timeout=10))
            check("negative temperature rejected", False, "no error")
        except grpc.RpcError as e:
            check("negative temperature rejected",
                  e.code() == grpc.StatusCode.INVALID_ARGUMENT, str(e.code()))
        channel.close()
    finally:
        rc = server.stop()
    check("SIGTERM exits 0", rc == 0, f"exit {rc}")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


def _load(path, name):
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


if __name__ == "__main__":
    sys.exit(main())

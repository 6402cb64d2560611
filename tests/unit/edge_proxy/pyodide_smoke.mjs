// Load relay_core.py into Pyodide (the interpreter family of Cloudflare Python Workers),
// import it and print a few of its decisions as one JSON object on stdout.
//
// Usage: node pyodide_smoke.mjs <path/to/relay_core.py> <path/to/node_modules/pyodide>
// Runs offline: the npm package ships the interpreter and its standard library.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [corePath, pyodideDir] = process.argv.slice(2);
const { loadPyodide } = await import(pathToFileURL(join(pyodideDir, "pyodide.mjs")).href);
const pyodide = await loadPyodide({ indexURL: pyodideDir + "/" });

pyodide.FS.mkdirTree("/relay");
pyodide.FS.writeFile("/relay/relay_core.py", readFileSync(corePath, "utf8"));

const probe = `
import json
import sys

sys.path.insert(0, "/relay")
import relay_core

policy = relay_core.RelayPolicy(secret="pyodide-secret")
key = ("x-relay-key", "pyodide-secret")

def outcome(decision):
    if isinstance(decision, relay_core.Refusal):
        return {"status": decision.status, "body": json.loads(decision.body())}
    if isinstance(decision, relay_core.Forward):
        return {"url": decision.url, "headers": [list(pair) for pair in decision.headers]}
    return {"model": decision.model}

json.dumps({
    "python": list(sys.version_info[:2]),
    "forward": outcome(policy.decide(
        "POST", "/gemini/v1beta/models/m:streamGenerateContent", "alt=sse",
        [key, ("x-forwarded-for", "203.0.113.7"), ("cf-connecting-ip", "203.0.113.7"),
         ("x-goog-api-key", "AIza-upstream"), ("content-type", "application/json")],
    )),
    "missing_key": outcome(policy.decide("GET", "/openai/v1/models", "", [])),
    "wrong_key": outcome(policy.decide("GET", "/openai/v1/models", "", [("x-relay-key", "nope")])),
    "unset_secret": outcome(relay_core.RelayPolicy(secret=None).decide("GET", "/openai/v1", "", [key])),
    "traversal": outcome(policy.decide("GET", "/gemini/%2e%2e/x", "", [key])),
    "unknown": outcome(policy.decide("GET", "/nowhere/x", "", [key])),
    "binding": outcome(policy.decide_binding("POST", "/cfai-binding/cf/meta/llama-3.1-8b-instruct", [key])),
    "response_headers": [list(pair) for pair in relay_core.filter_response_headers(
        [("content-type", "text/event-stream"), ("content-encoding", "gzip"),
         ("connection", "close"), ("x-relay-error", "spoofed")],
        body_decoded=True,
    )],
})
`;

console.log(pyodide.runPython(probe));

"""A small Hub-compatible HTTP server for tests: enough of the Hugging Face Hub API for the real `huggingface_hub`
client (HF_ENDPOINT=http://127.0.0.1:PORT, HF_HUB_DISABLE_XET=1) to create repos, commit (regular and LFS files),
read repo info and trees, and download files by revision. State lives in memory.

Fault injection for failure tests: `server.fail_commits` (answer N commit requests with 500) and
`server.cut_uploads` (read half of N LFS uploads, then drop the connection).
"""

import base64
import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

LFS_SUFFIXES = (".safetensors", ".png", ".gif", ".bin", ".pt", ".jpg")


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob " + str(len(data)).encode() + b"\0" + data).hexdigest()


class Repo:
    def __init__(self, repo_type, repo_id, private, owner):
        self.repo_type, self.repo_id, self.private, self.owner = repo_type, repo_id, private, owner
        self.commits = {}  # sha -> {"files": {path: bytes}, "parent": sha | None, "message": str}
        self.branches = {"main": None}

    def files_at(self, revision):
        sha = self.resolve(revision)
        return ({} if sha is None else self.commits[sha]["files"]), sha

    def resolve(self, revision):
        if revision in self.branches:
            return self.branches[revision]
        if revision in self.commits:
            return revision
        raise KeyError(revision)


class HubState:
    def __init__(self, tokens):
        self.tokens = dict(tokens)  # token -> user name
        self.repos = {}
        self.blobs = {}  # sha256 -> bytes (LFS objects)
        self.lock = threading.Lock()
        self.fail_commits = 0
        self.cut_uploads = 0
        self.requests = []  # (method, path) log
        self.commit_counter = 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: HubState = None  # set by serve()

    def log_message(self, *args):  # quiet
        pass

    # ------------------------------------------------------------------------------------------------ helpers
    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status, payload=None, headers=None, body=None):
        data = body if body is not None else (json.dumps(payload).encode() if payload is not None else b"")
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        if payload is not None and body is None:
            self.send_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, status, code, message):
        self._send(status, {"error": message}, headers={"X-Error-Code": code, "X-Error-Message": message})

    def _user(self):
        auth = self.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else None
        return self.state.tokens.get(token) if token else None

    def _repo(self, repo_type, repo_id, write=False):
        repo = self.state.repos.get((repo_type, repo_id))
        user = self._user()
        if repo is None or (repo.private and user != repo.owner):
            self._error(401 if user is None else 404, "RepoNotFound", f"Repository Not Found for url: {self.path}.")
            return None
        if write and user != repo.owner:
            self._error(403, "Forbidden", "You don't have the rights to write to this repository.")
            return None
        return repo

    @staticmethod
    def _split_type(parts):
        """['datasets', 'a', 'b', ...] -> ('dataset', 'a/b', rest); models have no prefix."""
        if parts[0] in ("datasets", "spaces"):
            return parts[0][:-1], "/".join(parts[1:3]), parts[3:]
        return "model", "/".join(parts[0:2]), parts[2:]

    # ------------------------------------------------------------------------------------------------ verbs
    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        self.state.requests.append(("GET", self.path))
        path = unquote(urlparse(self.path).path)
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["api"] and len(parts) >= 4 and parts[1] in ("models", "datasets", "spaces"):
            repo_type, repo_id, rest = parts[1][:-1], "/".join(parts[2:4]), parts[4:]
            repo = self._repo(repo_type, repo_id)
            if repo is None:
                return
            if not rest or rest[0] == "revision":
                revision = rest[1] if len(rest) > 1 else "main"
                return self._repo_info(repo, revision)
            if rest[0] == "tree":
                return self._tree(repo, rest[1], "/".join(rest[2:]))
            return self._error(404, "EntryNotFound", "unknown api route")
        if parts and parts[0] == "lfs-objects":
            blob = self.state.blobs.get(parts[1])
            return self._send(200, body=blob) if blob is not None else self._error(404, "EntryNotFound", "no object")
        if "resolve" in parts:
            i = parts.index("resolve")
            repo_type, repo_id, _ = self._split_type(parts[:i] + ["x"])
            repo = self._repo(repo_type, repo_id)
            if repo is None:
                return
            revision, file_path = parts[i + 1], "/".join(parts[i + 2 :])
            try:
                files, sha = repo.files_at(revision)
            except KeyError:
                return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            if file_path not in files:
                return self._error(404, "EntryNotFound", f"{file_path} does not exist at {revision}")
            data = files[file_path]
            etag = hashlib.sha256(data).hexdigest() if file_path.endswith(LFS_SUFFIXES) else git_sha1(data)
            headers = {
                "X-Repo-Commit": sha,
                "ETag": f'"{etag}"',
                "X-Linked-Etag": f'"{etag}"',
                "X-Linked-Size": str(len(data)),
            }
            return self._send(200, body=data, headers=headers)
        self._error(404, "RepoNotFound", f"unknown route {path}")

    def _repo_info(self, repo, revision):
        try:
            files, sha = repo.files_at(revision)
        except KeyError:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        self._send(
            200,
            {
                "id": repo.repo_id,
                "modelId": repo.repo_id,
                "sha": sha,
                "private": repo.private,
                "siblings": [{"rfilename": p} for p in sorted(files)],
                "tags": [],
                "downloads": 0,
                "likes": 0,
                "lastModified": "2026-01-01T00:00:00.000Z",
                "createdAt": "2026-01-01T00:00:00.000Z",
            },
        )

    def _tree(self, repo, revision, prefix):
        try:
            files, _ = repo.files_at(revision)
        except KeyError:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        entries = []
        for p, data in sorted(files.items()):
            if prefix and not p.startswith(prefix.rstrip("/") + "/"):
                continue
            entry = {"type": "file", "path": p, "oid": git_sha1(data), "size": len(data)}
            if p.endswith(LFS_SUFFIXES):
                entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 130}
            entries.append(entry)
        self._send(200, entries)

    def do_PUT(self):
        self.state.requests.append(("PUT", self.path))
        parts = [p for p in urlparse(self.path).path.split("/") if p]
        if parts and parts[0] == "lfs-upload":
            length = int(self.headers.get("Content-Length") or 0)
            if self.state.cut_uploads:
                self.state.cut_uploads -= 1
                self.rfile.read(length // 2)
                self.close_connection = True
                self.connection.shutdown(2)  # the upload is cut off mid-body
                return
            data = self.rfile.read(length)
            if hashlib.sha256(data).hexdigest() != parts[1]:
                return self._error(400, "BadRequest", "sha256 mismatch")
            self.state.blobs[parts[1]] = data
            return self._send(200, {})
        self._body()
        self._error(404, "NotFound", "unknown route")

    def do_POST(self):
        self.state.requests.append(("POST", self.path))
        body = self._body()  # always read the body, even to answer with an error (keep-alive)
        path = unquote(urlparse(self.path).path)
        parts = [p for p in path.split("/") if p]
        if path == "/api/repos/create":
            return self._create_repo(json.loads(body or b"{}"))
        if path == "/api/validate-yaml":
            return self._send(200, {"errors": [], "warnings": []})
        if path.endswith(".git/info/lfs/objects/batch"):
            return self._lfs_batch(json.loads(body))
        if parts[:1] == ["api"] and len(parts) >= 6 and parts[4] == "branch":
            repo = self._repo(parts[1][:-1], "/".join(parts[2:4]), write=True)
            if repo is None:
                return
            branch = "/".join(parts[5:])
            if branch in repo.branches:
                return self._send(409, {"error": "Branch already exists"})
            start = json.loads(body or b"{}").get("startingPoint") or "main"
            repo.branches[branch] = repo.resolve(start)
            return self._send(200, {})
        if parts[:1] == ["api"] and len(parts) >= 6 and parts[4] in ("preupload", "commit"):
            repo = self._repo(parts[1][:-1], "/".join(parts[2:4]), write=parts[4] == "commit")
            if repo is None:
                return
            if parts[4] == "preupload":
                return self._preupload(repo, parts[5], json.loads(body))
            return self._commit(repo, parts[5], body)
        self._error(404, "NotFound", f"unknown route {path}")

    def _create_repo(self, payload):
        user = self._user()
        if user is None:
            return self._error(401, "Unauthorized", "Invalid credentials in Authorization header")
        repo_type = payload.get("type") or "model"
        name = payload["name"]
        repo_id = f"{payload.get('organization') or user}/{name}"
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        url = f"http://{self.headers['Host']}/{prefix}{repo_id}"
        key = (repo_type, repo_id)
        if key in self.state.repos:
            return self._send(409, {"error": "You already created this repo", "url": url})
        private = bool(payload.get("private")) or payload.get("visibility") in ("private", "protected")
        self.state.repos[key] = Repo(repo_type, repo_id, private, user)
        self._send(200, {"url": url, "name": repo_id})

    def _preupload(self, repo, revision, payload):
        try:
            files, _ = repo.files_at(revision)
        except KeyError:
            files = {}
        out = []
        for f in payload["files"]:
            lfs = f["path"].endswith(LFS_SUFFIXES)
            existing = files.get(f["path"])
            oid = None
            if existing is not None:
                oid = hashlib.sha256(existing).hexdigest() if lfs else git_sha1(existing)
            out.append(
                {"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid}
            )
        self._send(200, {"files": out})

    def _lfs_batch(self, payload):
        host = self.headers["Host"]
        objects = []
        for obj in payload.get("objects", []):
            entry = {"oid": obj["oid"], "size": obj["size"]}
            if obj["oid"] not in self.state.blobs:
                entry["actions"] = {"upload": {"href": f"http://{host}/lfs-upload/{obj['oid']}"}}
            objects.append(entry)
        self._send(
            200, {"transfer": "basic", "objects": objects}, headers={"Content-Type": "application/vnd.git-lfs+json"}
        )

    def _commit(self, repo, revision, body):
        if self.state.fail_commits:
            self.state.fail_commits -= 1
            return self._error(500, "InternalError", "simulated server error on commit")
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        header = next(x["value"] for x in lines if x["key"] == "header")
        branch = unquote(revision)
        with self.state.lock:
            if branch not in repo.branches and branch not in repo.commits:
                repo.branches[branch] = repo.branches["main"]
            parent = repo.resolve(branch)
            files = dict(repo.commits[parent]["files"]) if parent else {}
            for item in lines:
                value = item["value"]
                if item["key"] == "file":
                    files[value["path"]] = base64.b64decode(value["content"])
                elif item["key"] == "lfsFile":
                    if value["oid"] not in self.state.blobs:
                        return self._error(400, "BadRequest", f"LFS object {value['oid']} was never uploaded")
                    files[value["path"]] = self.state.blobs[value["oid"]]
                elif item["key"] in ("deletedFile", "deletedFolder"):
                    for p in [p for p in files if p == value["path"] or p.startswith(value["path"].rstrip("/") + "/")]:
                        del files[p]
            self.state.commit_counter += 1
            sha = hashlib.sha1(f"{parent}{self.state.commit_counter}{time.time()}".encode()).hexdigest()
            repo.commits[sha] = {"files": files, "parent": parent, "message": header.get("summary", "")}
            repo.branches[branch] = sha
        prefix = "" if repo.repo_type == "model" else f"{repo.repo_type}s/"
        self._send(
            200,
            {
                "success": True,
                "commitOid": sha,
                "commitUrl": f"http://{self.headers['Host']}/{prefix}{repo.repo_id}/commit/{sha}",
            },
        )


def serve(tokens=None, host="127.0.0.1", port=0):
    """Start the server in a thread; returns (server, state, base_url). Stop with server.shutdown()."""
    state = HubState(tokens or {"hf_test_token_owner": "tester", "hf_test_token_other": "someone-else"})
    handler = type("BoundHandler", (Handler,), {"state": state})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, state, f"http://{host}:{server.server_address[1]}"


if __name__ == "__main__":
    srv, _, url = serve(port=8765)
    print(f"local Hub at {url}")
    srv.serve_forever()

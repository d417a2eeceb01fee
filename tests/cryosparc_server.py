"""A loopback stand-in of the cryoSPARC 5 HTTP API, for the unmodified cryosparc-tools client.

The 5.x client builds its API from ``<base_url>/api/cmd/openapi.json``: every endpoint's
``summary`` becomes a function (``jobs.save_output`` -> ``cs.api.jobs.save_output``), requests
are built from the declared parameters and body media types, and responses are validated into
``cryosparc.models`` classes. Serving a small schema with the endpoints locband uses therefore
runs the real client code (request construction, CSDAT dataset streaming, file up/downloads).

The server binds 127.0.0.1 only, on a free port, in a daemon thread, and stops by itself after
``time_limit`` seconds. It keeps its projects, jobs and datasets in memory and the files in a
real project folder; ``calls`` records every request as ``(summary, path_params, query, body)``.
Refinements that locband queues complete after ``polls_to_finish`` status checks, with half-maps
copied from their volume input plus fresh noise and resolutions taken from ``refine_resolutions``.
"""

from __future__ import annotations

import io
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import mrcfile
import numpy as np
from cryosparc.dataset import CSDAT_FORMAT, Dataset

TOKEN = "locband-test-token"
EMAIL = "tester@example.org"
PASSWORD = "not-a-secret"
VERSION = "v5.0.3"
NOW = "2026-01-01T00:00:00+00:00"
P, W = "P1", "W1"

J = "application/json"
OCTET = "application/octet-stream"
CSDAT = "application/x-cryosparc-dataset"

# (method, path, summary, [(param, in)], body: None | (media, title), response: None | media/$ref | "json")
ENDPOINTS: list[tuple[str, str, str, list[tuple[str, str]], tuple[str, str] | None, str | None]] = [
    ("post", "/login", "login", [], ("form", "Login"), "#/components/schemas/Token"),
    ("get", "/users/me", "users.me", [], None, "#/components/schemas/User"),
    ("get", "/config/version", "config.get_version", [], None, "string"),
    ("get", "/projects/{project_uid}", "projects.find_one", [("project_uid", "path")], None, "#/components/schemas/Project"),
    ("get", "/projects/{project_uid}/directory", "projects.get_directory", [("project_uid", "path")], None, "string"),
    ("get", "/projects/{project_uid}/files", "projects.download_file", [("project_uid", "path"), ("path", "query")],
     None, OCTET),
    ("put", "/projects/{project_uid}/files", "projects.upload_file",
     [("project_uid", "path"), ("path", "query"), ("overwrite", "query")], (OCTET, "Stream"), None),
    ("get", "/jobs/{project_uid}/{job_uid}", "jobs.find_one", [("project_uid", "path"), ("job_uid", "path")], None,
     "#/components/schemas/Job"),
    ("get", "/jobs/{project_uid}/{job_uid}/directory", "jobs.get_directory",
     [("project_uid", "path"), ("job_uid", "path")], None, "string"),
    ("post", "/jobs/{project_uid}/{workspace_uid}", "jobs.create",
     [("project_uid", "path"), ("workspace_uid", "path"), ("type", "query"), ("title", "query"),
      ("description", "query")], (J, "Params"), "#/components/schemas/Job"),
    ("post", "/jobs/{project_uid}/{job_uid}/connect/{target_input}", "jobs.connect",
     [("project_uid", "path"), ("job_uid", "path"), ("target_input", "path"), ("source_job_uid", "query"),
      ("source_output_name", "query")], None, "#/components/schemas/Job"),
    ("post", "/jobs/{project_uid}/{job_uid}/external/inputs/{input_name}", "jobs.add_external_input",
     [("project_uid", "path"), ("job_uid", "path"), ("input_name", "path")], (J, "Input Spec"),
     "#/components/schemas/Job"),
    ("post", "/jobs/{project_uid}/{job_uid}/external/outputs/{output_name}", "jobs.add_external_output",
     [("project_uid", "path"), ("job_uid", "path"), ("output_name", "path")], (J, "Output Spec"),
     "#/components/schemas/Job"),
    ("post", "/jobs/{project_uid}/{job_uid}/outputs/{output_name}/fields", "jobs.get_output_fields",
     [("project_uid", "path"), ("job_uid", "path"), ("output_name", "path")], (J, "Dtype Params"), "json"),
    ("patch", "/jobs/{project_uid}/{job_uid}/mark_running", "jobs.mark_running",
     [("project_uid", "path"), ("job_uid", "path"), ("status", "query")], None, "#/components/schemas/Job"),
    ("patch", "/jobs/{project_uid}/{job_uid}/mark_completed", "jobs.mark_completed",
     [("project_uid", "path"), ("job_uid", "path")], None, "#/components/schemas/Job"),
    ("patch", "/jobs/{project_uid}/{job_uid}/mark_failed", "jobs.mark_failed",
     [("project_uid", "path"), ("job_uid", "path")], (J, "Error"), "#/components/schemas/Job"),
    ("post", "/jobs/{project_uid}/{job_uid}/outputs/{output_name}/dataset", "jobs.save_output",
     [("project_uid", "path"), ("job_uid", "path"), ("output_name", "path"), ("version", "query")],
     (CSDAT, "Dataset"), "#/components/schemas/Job"),
    ("get", "/jobs/{project_uid}/{job_uid}/outputs/{output_name}/dataset", "jobs.load_output",
     [("project_uid", "path"), ("job_uid", "path"), ("output_name", "path"), ("slots", "query"),
      ("version", "query")], None, CSDAT),
    ("post", "/jobs/{project_uid}/{job_uid}/events", "jobs.add_event_log",
     [("project_uid", "path"), ("job_uid", "path"), ("type", "query")], (J, "Text"), "#/components/schemas/TextEvent"),
    ("put", "/jobs/{project_uid}/{job_uid}/events/{event_id}", "jobs.update_event_log",
     [("project_uid", "path"), ("job_uid", "path"), ("event_id", "path"), ("type", "query")], (J, "Text"),
     "#/components/schemas/TextEvent"),
    ("post", "/jobs/{project_uid}/{job_uid}/params/{param_name}", "jobs.set_param",
     [("project_uid", "path"), ("job_uid", "path"), ("param_name", "path"), ("value", "query")], None,
     "#/components/schemas/Job"),
    ("post", "/jobs/{project_uid}/{job_uid}/enqueue", "jobs.enqueue",
     [("project_uid", "path"), ("job_uid", "path"), ("lane", "query"), ("hostname", "query"), ("gpus", "query")],
     None, "#/components/schemas/Job"),
]


def openapi_schema() -> dict[str, Any]:
    """The OpenAPI document the client reads at ``/api/cmd/openapi.json``."""
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, params, body, response in ENDPOINTS:
        op: dict[str, Any] = {"summary": summary, "parameters": [
            {"name": n, "in": where, "required": where == "path", "schema": {}} for n, where in params]}
        if body is not None:
            media, title = body
            media = "application/x-www-form-urlencoded" if media == "form" else media
            op["requestBody"] = {"required": media != J, "content": {media: {"schema": {"title": title}}}}
        if response is None:
            op["responses"] = {"200": {"description": "OK"}}
        elif response in (OCTET, CSDAT):
            op["responses"] = {"200": {"content": {response: {"schema": {"type": "string", "format": "binary"}}}}}
        else:
            schema = ({"$ref": response} if response.startswith("#") else
                      {"type": "string"} if response == "string" else {})
            op["responses"] = {"200": {"content": {J: {"schema": schema}}}}
        paths.setdefault(path, {})[method] = op
    return {"openapi": "3.1.0", "info": {"title": "locband test stand-in", "version": VERSION}, "paths": paths,
            "components": {"schemas": {}}}


_ROUTES = [(m.upper(), re.compile("^/api/cmd" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", p) + "$"), s)
           for m, p, s, _, _, _ in ENDPOINTS]


class HTTPError(Exception):
    def __init__(self, code: int, detail: str) -> None:
        super().__init__(detail)
        self.code, self.detail = code, detail


def _read_mrc(path: Path) -> tuple[np.ndarray, float]:
    with mrcfile.open(path, permissive=True) as m:
        return np.array(m.data, dtype=np.float32), float(m.voxel_size.x)


def _write_mrc(path: Path, data: np.ndarray, psize: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(np.asarray(data, np.float32))
        m.voxel_size = psize


def volume_dataset(paths: dict[str, str], shape: tuple[int, ...], psize: float) -> Dataset:
    """A one-row volume dataset as a refinement writes it (path, shape, psize_A per slot)."""
    spec: list[Any] = []
    for s in paths:
        spec += [(f"{s}/path", "O"), (f"{s}/shape", "<u4", (3,)), (f"{s}/psize_A", "<f4")]
    d = Dataset.allocate(1, spec)
    for s, p in paths.items():
        d[f"{s}/path"] = [p]
        d[f"{s}/shape"] = [list(shape)]
        d[f"{s}/psize_A"] = [psize]
    return d


class FakeCryosparc:
    """State and HTTP front end of the stand-in (see the module docstring)."""

    def __init__(self, project_dir: Path, *, visible: bool = True, time_limit: float = 120.0,
                 polls_to_finish: int = 2, refine_resolutions: list[float] | None = None) -> None:
        self.project_dir = Path(project_dir)
        self.reported_dir = str(self.project_dir) if visible else "/nonexistent/locband-test/P1"
        self.time_limit = time_limit
        self.polls_to_finish = polls_to_finish
        self.refine_resolutions = list(refine_resolutions or [])
        self.calls: list[tuple[str, dict[str, str], dict[str, Any], Any]] = []
        self.jobs: dict[str, dict[str, Any]] = {}
        self.data: dict[tuple[str, str], Dataset] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.errors: dict[str, str] = {}
        self.fail_uploads = False
        self.fail_on: set[str] = set()  # summaries that answer 500
        self.fail_refines: set[int] = set()
        self._pending: dict[str, int] = {}
        self._n_jobs = 0
        self._n_refines = 0
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self.project_dir.mkdir(parents=True, exist_ok=True)

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeCryosparc:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # one response = headers + body without a 40 ms delayed-ACK stall

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _dispatch(self) -> None:
                fake._handle(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        timer = threading.Timer(self.time_limit, self.stop)
        timer.daemon = True
        timer.start()
        return self

    def stop(self) -> None:
        srv, self._server = self._server, None
        if srv is not None:
            srv.shutdown()
            srv.server_close()

    def __enter__(self) -> FakeCryosparc:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test helpers ---------------------------------------------------------------------
    def summaries(self) -> list[str]:
        return [c[0] for c in self.calls]

    def _job_model(self, uid: str, type_: str, title: str = "") -> dict[str, Any]:
        num = int(uid[1:])
        return {"uid": uid, "project_uid": P, "workspace_uids": [W], "title": title, "description": "",
                "status": "building", "job_dir": uid, "job_dir_size_last_updated": NOW, "uid_num": num,
                "project_uid_num": 1, "status_num": 0, "build_errors": [],
                "spec": {"type": type_, "params": {}, "inputs": {}, "outputs": {}, "ui_tile_width": 1,
                         "ui_tile_height": 1, "resource_spec": {}}}

    def _new_uid(self) -> str:
        self._n_jobs += 1
        while f"J{self._n_jobs}" in self.jobs:
            self._n_jobs += 1
        return f"J{self._n_jobs}"

    def add_refinement(self, uid: str, half_a: np.ndarray, half_b: np.ndarray, *, psize: float,
                       resolution: float, mask: np.ndarray | None = None, psize_b: float | None = None,
                       slots: tuple[str, ...] = ("map", "map_half_A", "map_half_B", "mask_fsc"),
                       iteration: int = 8) -> None:
        """A completed refinement with files laid out as cryoSPARC lays them out."""
        with self._lock:
            job = self._job_model(uid, "homo_refine_new", "refinement")
            job["status"] = "completed"
            vols = {"map": (half_a + half_b) / 2, "map_half_A": half_a, "map_half_B": half_b,
                    "mask_fsc": mask if mask is not None else np.ones_like(half_a)}
            paths = {}
            for s in slots:
                rel = f"{uid}/{uid}_{iteration:03d}_volume_{s}.mrc"
                _write_mrc(self.project_dir / rel, vols[s], psize_b if (s == "map_half_B" and psize_b) else psize)
                paths[s] = rel
            dset = volume_dataset(paths, half_a.shape, psize)
            if psize_b is not None and "map_half_B" in paths:
                dset["map_half_B/psize_A"] = [psize_b]
            dset.save(str(self.project_dir / uid / f"{uid}_{iteration:03d}_volume.cs"))
            self._set_output(job, "volume", "volume", dset, {"fsc_info_best": {"radwn_final_A": resolution}})
            parts = Dataset.allocate(4, [("alignments3D/split", "<u4")])
            parts["alignments3D/split"] = [0, 1, 0, 1]
            self._set_output(job, "particles", "particle", parts, {})
            self.jobs[uid] = job

    def _set_output(self, job: dict[str, Any], name: str, type_: str, dset: Dataset, stats: dict[str, Any]) -> None:
        prefixes = sorted({f.split("/")[0] for f in dset.fields() if "/" in f})
        job["spec"]["outputs"][name] = {
            "type": type_, "title": name, "slots": [{"name": p, "dtype": "blob" if type_ == "volume" else p}
                                                    for p in prefixes],
            "results": [{"name": p, "dtype": "blob" if type_ == "volume" else p, "versions": [0],
                         "metafiles": [f"{job['uid']}/{job['uid']}_{name}.cs"], "num_items": [len(dset)]}
                        for p in prefixes],
            "num_items": len(dset), "latest_summary_stats": stats}
        self.data[(job["uid"], name)] = dset

    # -- simulated refinement -------------------------------------------------------------
    def _finish_refine(self, job: dict[str, Any]) -> None:
        self._n_refines += 1
        if self._n_refines in self.fail_refines:
            job["status"] = "failed"
            return
        conn = job["spec"]["inputs"].get("volume", {}).get("connections", [])
        if not conn and (job["uid"], "volume") in self.data:  # a seeded refinement queued by the test
            job["status"] = "completed"
            return
        if not conn:
            job["status"] = "failed"
            return
        src = self.data[(conn[0]["job_uid"], conn[0]["output"])]
        rng = np.random.default_rng(self._n_refines)
        uid = job["uid"]
        halves = {}
        psize = float(src["map_half_A/psize_A"][0])
        for s in ("map_half_A", "map_half_B"):
            data, psize = _read_mrc(self.project_dir / str(src[f"{s}/path"][0]))
            halves[s] = data + rng.normal(0, 0.1, data.shape).astype(np.float32)
        res = self.refine_resolutions.pop(0) if self.refine_resolutions else 5.0
        self.jobs[uid] = job
        paths = {}
        for s, vol in (("map", (halves["map_half_A"] + halves["map_half_B"]) / 2), *halves.items()):
            rel = f"{uid}/{uid}_001_volume_{s}.mrc"
            _write_mrc(self.project_dir / rel, vol, psize)
            paths[s] = rel
        self._set_output(job, "volume", "volume", volume_dataset(paths, vol.shape, psize),
                         {"fsc_info_best": {"radwn_final_A": res}})
        parts = Dataset.allocate(4, [("alignments3D/split", "<u4")])
        self._set_output(job, "particles", "particle", parts, {})
        job["status"] = "completed"

    # -- HTTP -------------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        url = urlsplit(h.path)
        query = {k: (v if len(v) > 1 else v[0]) for k, v in parse_qs(url.query).items()}
        body = self._read_body(h)
        if url.path == "/api/cmd/openapi.json":
            return self._reply(h, 200, J, json.dumps(openapi_schema()).encode())
        for method, rx, summary in _ROUTES:
            m = rx.match(url.path)
            if m and method == h.command:
                params = {k: unquote(v) for k, v in m.groupdict().items()}
                break
        else:
            return self._reply(h, 404, J, json.dumps({"detail": f"no route {h.command} {url.path}"}).encode())
        try:
            if summary != "login" and h.headers.get("Authorization") != f"Bearer {TOKEN}":
                raise HTTPError(401, "not authenticated")
            with self._lock:
                ctype = h.headers.get("Content-Type", "")
                logged = (Dataset.load(io.BytesIO(body)).fields() if ctype == CSDAT else
                          json.loads(body) if ctype == J and body else len(body) if body else None)
                self.calls.append((summary, params, query, logged))
                if summary in self.fail_on:
                    raise HTTPError(500, f"injected failure in {summary}")
                status, media, payload = getattr(self, "_ep_" + summary.replace(".", "_"))(params, query, body)
        except HTTPError as err:
            return self._reply(h, err.code, J, json.dumps({"detail": err.detail}).encode())
        self._reply(h, status, media, payload)

    @staticmethod
    def _read_body(h: BaseHTTPRequestHandler) -> bytes:
        if h.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(h.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    h.rfile.readline()
                    return bytes(out)
                out += h.rfile.read(size)
                h.rfile.readline()
        n = int(h.headers.get("Content-Length") or 0)
        return h.rfile.read(n) if n else b""

    @staticmethod
    def _reply(h: BaseHTTPRequestHandler, code: int, media: str, payload: bytes) -> None:
        h.send_response(code)
        h.send_header("Content-Type", media)
        h.send_header("Content-Length", str(len(payload)))
        h.end_headers()
        h.wfile.write(payload)

    @staticmethod
    def _json(obj: Any) -> tuple[int, str, bytes]:
        return 200, J, json.dumps(obj).encode()

    def _job(self, params: dict[str, str]) -> dict[str, Any]:
        if params.get("project_uid") != P:
            raise HTTPError(404, f"project {params.get('project_uid')} not found")
        job = self.jobs.get(params["job_uid"])
        if job is None:
            raise HTTPError(404, f"job {params['job_uid']} not found")
        return job

    # -- endpoints (named after the summaries) ----------------------------------------------
    def _ep_login(self, params: dict, query: dict, body: bytes) -> tuple[int, str, bytes]:
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        import hashlib

        if form.get("username") != EMAIL or form.get("password") != hashlib.sha256(PASSWORD.encode()).hexdigest():
            raise HTTPError(401, "bad email or password")
        return self._json({"access_token": TOKEN, "token_type": "bearer"})

    def _ep_users_me(self, params: dict, query: dict, body: bytes) -> tuple[int, str, bytes]:
        return self._json({"name": "tester", "first_name": "Test", "last_name": "Er", "emails": []})

    def _ep_config_get_version(self, params: dict, query: dict, body: bytes) -> tuple[int, str, bytes]:
        return self._json(VERSION)

    def _ep_projects_find_one(self, params: dict, query: dict, body: bytes) -> tuple[int, str, bytes]:
        if params["project_uid"] != P:
            raise HTTPError(404, f"project {params['project_uid']} not found")
        return self._json({"uid": P, "project_dir": self.reported_dir, "owner_user_id": "u1", "title": "test",
                           "size_last_updated": NOW, "uid_num": 1})

    def _ep_projects_get_directory(self, params: dict, query: dict, body: bytes) -> tuple[int, str, bytes]:
        return self._json(self.reported_dir)

    def _file(self, rel: str) -> Path:
        p = (self.project_dir / rel).resolve()
        if self.project_dir.resolve() not in p.parents:
            raise HTTPError(403, f"{rel} is outside the project")
        return p

    def _ep_projects_download_file(self, params: dict, query: dict, body: bytes) -> tuple[int, str, bytes]:
        p = self._file(query["path"])
        if not p.is_file():
            raise HTTPError(404, f"file {query['path']} not found")
        return 200, OCTET, p.read_bytes()

    def _ep_projects_upload_file(self, params: dict, query: dict, body: bytes) -> tuple[int, str, bytes]:
        if self.fail_uploads:
            raise HTTPError(507, "insufficient storage on the project volume")
        p = self._file(query["path"])
        if p.exists() and query.get("overwrite") not in ("true", "True"):
            raise HTTPError(409, f"file {query['path']} exists")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(body)
        return 200, J, b""

    def _ep_jobs_find_one(self, params: dict, query: dict, body: bytes) -> tuple[int, str, bytes]:
        job = self._job(params)
        if job["uid"] in self._pending:
            self._pending[job["uid"]] -= 1
            if self._pending[job["uid"]] <= 0:
                del self._pending[job["uid"]]
                self._finish_refine(job)
            else:
                job["status"] = "running"
        return self._json(job)

    def _ep_jobs_get_directory(self, params: dict, query: dict, body: bytes) -> tuple[int, str, bytes]:
        return self._json(f"{self.reported_dir}/{self._job(params)['uid']}")

    def _ep_jobs_create(self, params: dict, query: dict, body: bytes) -> tuple[int, str, bytes]:
        if params["project_uid"] != P:
            raise HTTPError(404, f"project {params['project_uid']} not found")
        if params["workspace_uid"] != W:
            raise HTTPError(404, f"workspace {params['workspace_uid']} not found")
        uid = self._new_uid()
        job = self._job_model(uid, query["type"], query.get("title", ""))
        job["spec"]["params"] = json.loads(body) if body else {}
        (self.project_dir / uid).mkdir(exist_ok=True)
        self.jobs[uid] = job
        self.events[uid] = []
        return self._json(job)

    def _ep_jobs_connect(self, params: dict, query: dict, body: bytes) -> tuple[int, str, bytes]:
        job = self._job(params)
        src = self._job({"project_uid": P, "job_uid": query["source_job_uid"]})
        out = src["spec"]["outputs"].get(query["source_output_name"])
        if out is None:
            raise HTTPError(422, f"job {src['uid']} has no output {query['source_output_name']}")
        inp = job["spec"]["inputs"].setdefault(params["target_input"], {"type": out["type"], "title": params["target_input"]})
        inp.setdefault("connections", []).append({"job_uid": src["uid"], "output": query["source_output_name"]})
        return self._json(job)

    def _ep_jobs_add_external_input(self, params: dict, query: dict, body: bytes) -> tuple[int, str, bytes]:
        job = self._job(params)
        spec = json.loads(body)
        job["spec"]["inputs"][params["input_name"]] = {**spec, "connections": []}
        return self._json(job)

    def _ep_jobs_add_external_output(self, params: dict, query: dict, body: bytes) -> tuple[int, str, bytes]:
        job = self._job(params)
        if job["status"] == "completed":
            raise HTTPError(422, "cannot add outputs to a completed job")
        spec = json.loads(body)
        job["spec"]["outputs"][params["output_name"]] = {
            "type": spec["type"], "title": spec.get("title", ""), "slots": spec["slots"],
            "results": [{"name": s["name"], "dtype": s["dtype"]} for s in spec["slots"]]}
        return self._json(job)

    def _ep_jobs_get_output_fields(self, params: dict, query: dict, body: bytes) -> tuple[int, str, bytes]:
        job = self._job(params)
        out = job["spec"]["outputs"].get(params["output_name"])
        if out is None:
            raise HTTPError(404, f"output {params['output_name']} not found")
        fields: list[list[Any]] = []
        for s in out["slots"]:
            fields += [[f"{s['name']}/path", "O"], [f"{s['name']}/shape", "<u4", [3]], [f"{s['name']}/psize_A", "<f4"]]
        return self._json(fields)

    def _ep_jobs_mark_running(self, params: dict, query: dict, body: bytes) -> tuple[int, str, bytes]:
        job = self._job(params)
        job["status"] = query.get("status", "waiting")
        return self._json(job)

    def _ep_jobs_mark_completed(self, params: dict, query: dict, body: bytes) -> tuple[int, str, bytes]:
        job = self._job(params)
        job["status"] = "completed"
        return self._json(job)

    def _ep_jobs_mark_failed(self, params: dict, query: dict, body: bytes) -> tuple[int, str, bytes]:
        job = self._job(params)
        job["status"] = "failed"
        self.errors[job["uid"]] = json.loads(body) if body else ""
        return self._json(job)

    def _ep_jobs_save_output(self, params: dict, query: dict, body: bytes) -> tuple[int, str, bytes]:
        job = self._job(params)
        if job["status"] not in ("running", "waiting"):
            raise HTTPError(422, f"job {job['uid']} is {job['status']}: outputs are saved only while running")
        out = job["spec"]["outputs"].get(params["output_name"])
        if out is None:
            raise HTTPError(404, f"output {params['output_name']} not found")
        dset = Dataset.load(io.BytesIO(body))
        self.data[(job["uid"], params["output_name"])] = dset
        meta = f"{job['uid']}/{job['uid']}_{params['output_name']}.cs"
        dset.save(str(self.project_dir / meta))
        for r in out["results"]:
            r.update(versions=[int(query.get("version", 0))], metafiles=[meta], num_items=[len(dset)])
        out["num_items"] = len(dset)
        return self._json(job)

    def _ep_jobs_load_output(self, params: dict, query: dict, body: bytes) -> tuple[int, str, bytes]:
        job = self._job(params)
        dset = self.data.get((job["uid"], params["output_name"]))
        if dset is None:
            raise HTTPError(404, f"job {job['uid']} has no results for output {params['output_name']}")
        slots = query.get("slots", "all")
        if slots not in ("all", "default", "passthrough"):
            wanted = [slots] if isinstance(slots, str) else list(slots)
            missing = [s for s in wanted if not any(f.startswith(s + "/") for f in dset.fields())]
            if missing:
                raise HTTPError(422, f"output {params['output_name']} has no slots {missing}")
            dset = dset.filter_prefixes(wanted)
        buf = io.BytesIO()
        dset.save(buf, format=CSDAT_FORMAT)
        return 200, CSDAT, buf.getvalue()

    def _event(self, job: dict[str, Any], eid: str, text: str, type_: str) -> dict[str, Any]:
        return {"_id": eid, "project_uid": P, "job_uid": job["uid"], "type": type_, "text": text}

    def _ep_jobs_add_event_log(self, params: dict, query: dict, body: bytes) -> tuple[int, str, bytes]:
        job = self._job(params)
        evs = self.events.setdefault(job["uid"], [])
        ev = self._event(job, f"{len(evs) + 1:024x}", json.loads(body), query.get("type", "text"))
        evs.append(ev)
        return self._json(ev)

    def _ep_jobs_update_event_log(self, params: dict, query: dict, body: bytes) -> tuple[int, str, bytes]:
        job = self._job(params)
        for ev in self.events.get(job["uid"], []):
            if ev["_id"] == params["event_id"]:
                ev["text"] = json.loads(body)
                return self._json(ev)
        raise HTTPError(404, f"event {params['event_id']} not found")

    def _ep_jobs_set_param(self, params: dict, query: dict, body: bytes) -> tuple[int, str, bytes]:
        job = self._job(params)
        job["spec"]["params"][params["param_name"]] = query.get("value")
        return self._json(job)

    def _ep_jobs_enqueue(self, params: dict, query: dict, body: bytes) -> tuple[int, str, bytes]:
        job = self._job(params)
        if job["spec"]["type"] == "snowflake":
            raise HTTPError(422, "external jobs cannot be queued")
        if job["status"] != "building":
            raise HTTPError(422, f"job {job['uid']} is {job['status']}, not building")
        job["status"] = "queued"
        self._pending[job["uid"]] = self.polls_to_finish
        return self._json(job)


__all__ = ["FakeCryosparc", "openapi_schema", "volume_dataset", "TOKEN", "EMAIL", "PASSWORD", "P", "W"]

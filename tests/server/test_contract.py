"""The API's contract: every field checked before a job is queued (a 400 naming it), the OpenAPI schema listing
the statuses the server gives (never FastAPI's unused 422), 405s with their Allow header."""
import copy

import pytest


def _job_count(state):
    return len(state.jobs.jobs())


# --- every field checked up front: a 400 naming it, and no job --------------------------------------------
@pytest.mark.parametrize("path, body, message", [
    # the seed reached torch's generator as it was: "internal error: ValueError: Overflow" in a job
    ("/api/circuit", {"target": "features.3:1", "seed": 10**30}, "seed: Input should be less than or equal to 4294967295"),
    ("/api/circuit", {"target": "features.3:1", "seed": -1}, "seed: Input should be greater than or equal to 0"),
    ("/api/faithfulness", {"target": "features.3:1", "seed": 10**30}, "seed:"),
    # fmnist-convnet has 10 outputs: class 10 failed in the job
    ("/api/circuit", {"target": "logit:10"}, "class 10 is out of range: the model has 10 outputs (0..9)"),
    ("/api/faithfulness", {"target": "logit:10"}, "class 10 is out of range"),
    ("/api/query", {"images": "overall", "target": "logit:10"}, "class 10 is out of range"),
    ("/api/query", {"images": "overall", "target": "-logit:99999999999999999999"}, "is out of range"),
    # features.0's maps are 28x28, features.6's 7x7
    ("/api/circuit", {"target": "features.0:0:99,99"}, "unit 99,99 is outside the 28x28 map of layer features.0"),
    ("/api/query", {"images": "overall", "target": "features.6:2:7,0"}, "unit 7,0 is outside the 7x7 map"),
    ("/api/faithfulness", {"target": "features.6:2:0,7"}, "outside the 7x7 map"),
    ("/api/circuit", {"target": "features.3:dir(1=0,2=0)"}, "every weight of the direction is 0"),
    ("/api/faithfulness", {"target": "features.3:1", "methods": []}, "methods: List should have at least 1 item"),
    ("/api/faithfulness", {"target": "features.3:1", "methods": ["random", "random"]}, "methods: 'random' is given twice"),
    ("/api/faithfulness", {"target": "features.3:1", "fractions": []}, "fractions: List should have at least 1 item"),
    ("/api/faithfulness", {"target": "features.3:1", "fractions": [0.1, 0]}, "fractions.1: Input should be greater than 0"),
    ("/api/faithfulness", {"target": "features.3:1", "held_out": ""}, "held_out: String should have at least 1 character"),
    # ablation reruns the model once per kernel: more than 4096 upstream kernels failed in the job
    ("/api/circuit", {"target": "loss", "method": "ablation"}, "kernels upstream of target loss is more than 4,096"),
    ("/api/faithfulness", {"target": "logit:1", "methods": ["magnitude", "ablation"]}, "method ablation reruns"),
    ("/api/circuit", {"target": "features.3:1", "keep": 0}, "keep: Input should be greater than 0"),
    ("/api/circuit", {"target": "features.3:1", "method": "magnitude", "kepe": 0.1}, "kepe: Extra inputs are not permitted"),
    ("/api/query", {"images": "overall", "criteria": "taylor"}, "criteria: Extra inputs are not permitted"),
    ("/api/query", {"images": "overall", "max_edges": 10**7}, "max_edges: Input should be less than or equal to 1000000"),
    ("/api/query", {"images": "overall", "node_cumulative": -0.5}, "node_cumulative: Input should be greater than or equal to 0"),
    ("/api/circuit", {"target": ""}, "target: String should have at least 1 character"),
    ("/api/circuit", {"target": "features.3:1", "images": "x" * 1001}, "images: String should have at most 1000 characters"),
])
def test_a_bad_field_is_a_400_before_any_job(client, state, path, body, message):
    before = _job_count(state)
    answer = client.post(path, json=body)
    assert answer.status_code == 400, answer.text
    assert message in answer.json()["detail"]
    assert _job_count(state) == before


@pytest.mark.parametrize("path, content, message", [
    ("/api/circuit", '{"target": "features.3:1", "keep": NaN}', "keep: Input should be a finite number"),
    ("/api/faithfulness", '{"target": "features.3:1", "fractions": [Infinity]}', "fractions.0: Input should be a finite number"),
    ("/api/query", '{"images": "overall", "edge_fraction": -Infinity}', "edge_fraction: Input should be a finite number"),
    ("/api/query", '{"images": "overall",', "JSON decode error"),
    ("/api/query", '["overall"]', "Input should be a valid dictionary"),
])
def test_malformed_json_is_a_400(client, state, path, content, message):
    before = _job_count(state)
    answer = client.post(path, content=content, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and message in answer.json()["detail"], answer.text
    assert _job_count(state) == before


@pytest.mark.parametrize("path, message", [
    ("/api/composition?image=i0&unit=features.6:2:9,9", "outside"),
    ("/api/composition?image=i0&unit=features.6:2&top_k=0", "top_k"),
    ("/api/layout?kind=spiral", "unknown layout 'spiral'"),
    ("/api/nodes/features.3/1/render.png?mode=pixel", "mode: Input should be 'channel' or 'neuron'"),
    ("/api/receptive_field?layer=features.3&y=-1&x=0", "y: Input should be greater than or equal to 0"),
    ("/api/activation?image=i0&layer=features.3&channel=-2", "channel: Input should be greater than or equal to 0"),
    ("/api/edges/features.3/1/-1", "inp: Input should be greater than or equal to 0"),
    ("/api/jobs/query-1/events?heartbeat=0", "heartbeat"),
])
def test_bad_parameters_are_400_before_any_job(client, state, path, message):
    before = _job_count(state)
    answer = client.get(path)
    assert answer.status_code == 400 and message in answer.json()["detail"], answer.text
    assert _job_count(state) == before


def test_long_ids_are_cut_in_messages(client):
    for path in ("/api/images/" + "x" * 5000 + ".png", "/api/images?set=" + "y" * 5000, "/api/jobs/" + "z" * 5000,
                 "/api/nodes/features.3/1?query=" + "q" * 5000, "/api/activation?image=i0&layer=" + "l" * 5000 + "&channel=0"):
        answer = client.get(path)
        assert answer.status_code == 404 and len(answer.json()["detail"]) < 400, (path[:40], answer.text[:100])


def test_the_server_never_answers_422(client):
    for method, path, kwargs in [("POST", "/api/query", {"json": {}}), ("POST", "/api/query", {"content": b"\xff"}),
                                 ("POST", "/api/circuit", {"json": {"target": 3}}), ("GET", "/api/images?limit=x", {}),
                                 ("POST", "/api/images", {}), ("GET", "/api/receptive_field", {})]:
        answer = client.request(method, path, **kwargs)
        assert answer.status_code == 400, (method, path, answer.status_code, answer.text)


# --- the OpenAPI schema: what the server gives ----------------------------------------------------------
def _operations(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            yield f"{method.upper()} {path}", operation


def test_openapi_lists_the_real_responses(client):
    schema = client.get("/api/openapi.json").json()
    assert "422" not in str(schema) and "HTTPValidationError" not in str(schema)
    problem = {"$ref": "#/components/schemas/Problem"}
    responses = {}
    for name, operation in _operations(schema):
        responses[name] = operation["responses"]
        assert operation["responses"]["400"]["content"]["application/json"]["schema"] == problem, name
        for code, answer in operation["responses"].items():
            if code[0] == "4" or code[0] == "5":
                assert answer["content"]["application/json"]["schema"] == problem, (name, code)
        assert "401" not in operation["responses"], name  # this server has no token
    assert schema["components"]["schemas"]["Problem"]["required"] == ["detail"]
    # work that may be queued: 202 with the job answer, and a link to follow the job
    for name in ("POST /api/query", "POST /api/circuit", "POST /api/faithfulness", "GET /api/composition",
                 "GET /api/layout", "POST /api/nodes/{layer}/{channel}/render", "POST /api/edges/{layer}/{out}/{inp}/render",
                 "GET /api/nodes/{layer}/{channel}/examples"):
        assert {"202", "403", "429"} <= set(responses[name]), name
        assert responses[name]["202"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/JobAnswer"}
        assert responses[name]["202"]["links"]["get_job"]["operationId"] == "get_job"
    assert {"413", "415", "403"} <= set(responses["POST /api/images"])
    assert set(responses["POST /api/query"]) == {"200", "202", "400", "403", "404", "413", "429"}  # 404: start false, not computed
    assert set(responses["GET /api/jobs/{job_id}"]) == {"200", "400", "404", "413"}
    assert set(responses["GET /api/sets"]) == {"200", "400", "413"}
    assert "202" not in responses["GET /api/nodes/{layer}/{channel}/render.png"]  # reading never queues work
    for name in ("GET /api/images/{image_id}.png", "GET /api/edges/{layer}/{out}/{inp}/kernel.png",
                 "GET /api/nodes/{layer}/{channel}/render.png", "GET /api/activation.png"):
        assert "image/png" in responses[name]["200"]["content"], name
    assert "text/event-stream" in responses["GET /api/jobs/{job_id}/events"]["200"]["content"]
    assert "429" in responses["GET /api/events"] and "text/event-stream" in responses["GET /api/events"]["200"]["content"]


def test_openapi_of_a_server_with_a_token_lists_401(state):
    from viscnn.server import create_app

    guarded = copy.copy(state)  # the same model and jobs (the app is never started: its end would stop them)
    guarded.token = "a-long-enough-token"
    schema = create_app(guarded).openapi()
    for name, operation in _operations(schema):
        assert "401" in operation["responses"], name


def test_answers_refuses_a_status_the_table_lacks():
    from viscnn.server.responses import answers

    with pytest.raises(ValueError, match="418"):
        answers(418)


@pytest.mark.parametrize("method, path, allow", [
    ("PUT", "/api/jobs/query-1", "GET, DELETE"),
    ("TRACE", "/api/sets", "GET"),
    ("GET", "/api/query", "POST"),
    ("DELETE", "/api/images", "GET, POST"),
    ("POST", "/", "GET, HEAD"),  # the page's files
])
def test_405_says_what_is_allowed(client, method, path, allow):
    answer = client.request(method, path)
    assert answer.status_code == 405 and answer.headers["allow"] == allow
    assert answer.json()["detail"] == f"{method} is not allowed here: use {allow}"


def test_an_unknown_api_path_is_404_whatever_the_method(client):
    for method in ("GET", "POST", "DELETE"):
        answer = client.request(method, "/api/nothing/here")
        assert answer.status_code == 404 and "no such endpoint" in answer.json()["detail"]

"""What a WSGI server hands over, and what the recording makes of it: header names in their
usual spelling, the path as sent when the server keeps it, a body the app read only in part
noted as such, and an app that raises recorded without its answer, the error still raised."""

import io

import pytest

from hookinspect.record import WSGIRecorder
from hookinspect.store.sqlite import Store


def environ(path_info: str = "/webhooks/stripe", body: bytes = b'{"id":"evt_1"}', **extra: str) -> dict:
    return {"REQUEST_METHOD": "POST", "PATH_INFO": path_info, "QUERY_STRING": "a=1", "SERVER_NAME": "staging.internal",
            "SERVER_PORT": "443", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "https", "REMOTE_ADDR": "10.0.0.9",
            "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)), "HTTP_HOST": "staging.example.com",
            "HTTP_STRIPE_SIGNATURE": "t=1,v1=abc", "HTTP_X_GITHUB_EVENT": "push", "wsgi.input": io.BytesIO(body),
            **extra}


def call(app, env) -> tuple[str, bytes]:
    said = {}

    def start_response(status, headers, exc_info=None):
        said["status"] = status
        return lambda data: None
    result = app(env, start_response)
    try:
        body = b"".join(result)
    finally:
        getattr(result, "close", lambda: None)()
    return said["status"], body


def recorded(store_path) -> list:
    with Store(store_path) as store:
        return [(store.get(seq), store.attempts(seq)) for seq in sorted(store.seqs())]


def test_headers_path_body_and_answer_as_a_wsgi_server_gives_them(tmp_path):
    def app(env, start_response):
        body = env["wsgi.input"].read()
        start_response("201 Created", [("Content-Type", "text/plain"), ("X-Seen", str(len(body)))])
        return [b"got ", b"it"]

    store = tmp_path / "w.db"
    recorder = WSGIRecorder(app, store=str(store), paths=["/webhooks/*"])
    assert call(recorder, environ(REQUEST_URI="/webhooks/str%69pe?a=1")) == ("201 Created", b"got it")
    assert call(recorder, environ("/webhooks/caf\xc3\xa9")) == ("201 Created", b"got it")  # no REQUEST_URI
    recorder.close()
    (first, attempts), (second, _) = recorded(store)
    assert first.target == "/webhooks/str%69pe?a=1" and second.path == "/webhooks/caf%C3%A9"
    assert first.headers.pairs()[:3] == [("Content-Type", "application/json"), ("Content-Length", "14"),
                                         ("Host", "staging.example.com")]
    assert first.headers.get("Stripe-Signature") == "t=1,v1=abc" and first.headers.get("X-Github-Event") == "push"
    assert first.body == b'{"id":"evt_1"}' and first.remote_addr == "10.0.0.9"
    answer = attempts[0].response
    assert (answer.status, answer.reason, answer.body, answer.headers.get("x-seen")) == (201, "Created", b"got it", "14")
    assert attempts[0].target_url == "https://staging.example.com/webhooks/str%69pe?a=1"


def test_a_body_read_in_part_is_noted_and_an_app_that_raises_is_recorded_and_still_raises(tmp_path):
    def partial(env, start_response):
        env["wsgi.input"].read(4)
        start_response("200 OK", [])
        return [b""]

    def broken(env, start_response):
        env["wsgi.input"].read()
        raise RuntimeError("the handler failed")

    store = tmp_path / "w.db"
    reads_part, raises = WSGIRecorder(partial, store=str(store)), WSGIRecorder(broken, store=str(store))
    call(reads_part, environ())
    with pytest.raises(RuntimeError):
        call(raises, environ())
    reads_part.close()
    raises.close()
    by_body = {len(d.body): (d, a) for d, a in recorded(store)}
    assert "read 4 of 14 body bytes" in by_body[4][0].note
    failed = by_body[14][1][0]
    assert failed.response is None and failed.error_message == "the app raised RuntimeError"
